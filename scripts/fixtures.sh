#!/usr/bin/env bash
# Generates the test media with Debian's ffmpeg: 10 s of VP8 (640x360, 30 fps, ~1.5 Mbit/s,
# keyframe every 15 frames) in IVF, the same at 320x180 (video-small.ivf: a second camera a
# test can tell apart by its size), and 10 s of Opus (48 kHz stereo, 20 ms packets) in Ogg.
# Skips what already exists. Each file is written under a name of this process and renamed
# into place, so test processes generating at once never mix their writes.
set -euo pipefail
out=${1:-fixtures/generated}
mkdir -p "$out"
vp8() { # name size kbit/s
    [[ -s "$out/$1" ]] && return 0
    ffmpeg -hide_banner -loglevel error -y -f lavfi -i "testsrc2=size=$2:rate=30" -t 10 \
        -c:v libvpx -b:v "$3k" -minrate "$3k" -maxrate "$3k" -g 15 -keyint_min 15 \
        -deadline realtime -cpu-used 8 -auto-alt-ref 0 -lag-in-frames 0 \
        -f ivf "$out/$1.$$.tmp"
    mv "$out/$1.$$.tmp" "$out/$1"
}
vp8 video.ivf 640x360 1500
vp8 video-small.ivf 320x180 400
if [[ ! -s "$out/audio.ogg" ]]; then
    ffmpeg -hide_banner -loglevel error -y -f lavfi -i sine=frequency=440:sample_rate=48000 -t 10 \
        -ac 2 -c:a libopus -b:a 64k -frame_duration 20 -f ogg "$out/audio.ogg.$$.tmp"
    mv "$out/audio.ogg.$$.tmp" "$out/audio.ogg"
fi
