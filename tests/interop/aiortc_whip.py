"""A WHIP publisher (RFC 9725) on aiortc, a WebRTC stack that is no browser.

It posts its offer (aiortc gathers first, so its candidates are in the offer) to the WHIP
endpoint URL with the Bearer TOKEN, completes the link with the answer, PATCHes the session
with its end of candidates (trickle ICE's last word), sends FRAMES frames of aiortc's test
video (VP8, 30 per second) with its test audio (Opus), then DELETEs the session.

Usage: python3 aiortc_whip.py URL TOKEN FRAMES
Prints one JSON line:
  { post, patch, delete, delete_again, location, connected, sent_video, posted_at_unix_ms,
    errors }
"""

import asyncio
import json
import sys
import time
import urllib.parse

import aiohttp
from aiortc import (
    AudioStreamTrack,
    RTCConfiguration,
    RTCPeerConnection,
    RTCSessionDescription,
    VideoStreamTrack,
)
from aiortc.mediastreams import MediaStreamError


class CountedVideo(VideoStreamTrack):
    """aiortc's test video, ending after `limit` frames."""

    def __init__(self, limit):
        super().__init__()
        self.limit = limit
        self.sent = 0
        self.done = asyncio.Event()

    async def recv(self):
        if self.sent >= self.limit:
            self.done.set()
            raise MediaStreamError
        frame = await super().recv()
        self.sent += 1
        return frame


def attribute(sdp, name):
    for line in sdp.splitlines():
        if line.startswith(f"a={name}:"):
            return line.split(":", 1)[1]
    return None


async def run(url, token, frames):
    result = {"errors": []}
    auth = {"Authorization": f"Bearer {token}"}
    # No STUN server (aiortc would otherwise ask Google's): the node is on this machine.
    pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    video = CountedVideo(frames)
    pc.addTrack(AudioStreamTrack())
    pc.addTrack(video)
    connected = asyncio.Event()

    @pc.on("connectionstatechange")
    def on_state():
        if pc.connectionState == "connected":
            connected.set()

    await pc.setLocalDescription(await pc.createOffer())
    offer = pc.localDescription.sdp
    async with aiohttp.ClientSession() as http:
        result["posted_at_unix_ms"] = int(time.time() * 1000)
        headers = {**auth, "Content-Type": "application/sdp"}
        async with http.post(url, data=offer, headers=headers) as response:
            result["post"] = response.status
            answer = await response.text()
            location = response.headers.get("Location")
        result["location"] = location
        if result["post"] != 201 or not location:
            result["errors"].append(f"POST: {result['post']} {answer}")
            return result
        session = urllib.parse.urljoin(url, location)
        await pc.setRemoteDescription(RTCSessionDescription(sdp=answer, type="answer"))
        fragment = (
            f"a=ice-ufrag:{attribute(offer, 'ice-ufrag')}\r\n"
            f"a=ice-pwd:{attribute(offer, 'ice-pwd')}\r\n"
            "m=audio 9 UDP/TLS/RTP/SAVPF 0\r\n"
            f"a=mid:{attribute(offer, 'mid')}\r\n"
            "a=end-of-candidates\r\n"
        )
        headers = {**auth, "Content-Type": "application/trickle-ice-sdpfrag"}
        async with http.patch(session, data=fragment, headers=headers) as response:
            result["patch"] = response.status
        try:
            await asyncio.wait_for(connected.wait(), timeout=20)
            result["connected"] = True
            # Every frame sent, then a little for the last ones to arrive.
            await asyncio.wait_for(video.done.wait(), timeout=frames / 30 + 30)
            await asyncio.sleep(1)
        except asyncio.TimeoutError:
            result["connected"] = connected.is_set()
            result["errors"].append(f"timed out in state {pc.connectionState}")
        result["sent_video"] = video.sent
        async with http.delete(session, headers=auth) as response:
            result["delete"] = response.status
        async with http.delete(session, headers=auth) as response:
            result["delete_again"] = response.status
    await pc.close()
    return result


def main():
    url, token, frames = sys.argv[1], sys.argv[2], int(sys.argv[3])
    print(json.dumps(asyncio.run(run(url, token, frames))))


if __name__ == "__main__":
    main()
