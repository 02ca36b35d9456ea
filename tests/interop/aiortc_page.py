"""A non-browser WebRTC stack (aiortc) driving a node's page API, as a page would.

It joins `room` on the page link given, sends aiortc's own test video and audio on the
publish link it offers, answers the node's playback offer (re-offers included) and counts
the frames it decodes per kind for `seconds`. Nothing is sent but what the page API asks:
no trickled candidates, so it must reach the node through the candidates in the node's SDP.

Usage: python3 aiortc_page.py PAGE_LINK ROOM SECONDS
Prints one JSON line: { publish, playback, decoded: { audio, video }, errors }.
"""

import asyncio
import json
import sys
import urllib.parse

import aiohttp
from aiortc import (
    AudioStreamTrack,
    RTCConfiguration,
    RTCPeerConnection,
    RTCSessionDescription,
    VideoStreamTrack,
)


def connection():
    # No STUN server (aiortc would otherwise ask Google's): the node is on this machine.
    return RTCPeerConnection(RTCConfiguration(iceServers=[]))


async def count(track, decoded):
    try:
        while True:
            await track.recv()
            decoded[track.kind] += 1
    except Exception:  # the track ended (a newer playback offer replaced its link)
        pass


async def run(link, room, seconds):
    url = urllib.parse.urlparse(link)
    key = urllib.parse.parse_qs(url.query)["token"][0]
    headers = {"Cookie": f"chroom_page={key}", "Origin": f"http://{url.netloc}"}
    publish = connection()
    playback = None
    decoded = {"audio": 0, "video": 0}
    errors = []
    tasks = []
    loop = asyncio.get_running_loop()
    async with aiohttp.ClientSession() as session:
        async with session.ws_connect(f"ws://{url.netloc}/api/ws", headers=headers) as ws:
            await ws.send_json({"type": "join", "room": room})
            end = loop.time() + seconds
            while loop.time() < end:
                try:
                    message = await asyncio.wait_for(ws.receive(), timeout=end - loop.time())
                except asyncio.TimeoutError:
                    break
                if message.type != aiohttp.WSMsgType.TEXT:
                    break
                message = json.loads(message.data)
                kind = message.get("type")
                if kind == "joined" and message.get("may_publish"):
                    publish.addTransceiver(AudioStreamTrack(), direction="sendonly")
                    publish.addTransceiver(VideoStreamTrack(), direction="sendonly")
                    await publish.setLocalDescription(await publish.createOffer())
                    await ws.send_json({"type": "publish", "sdp": publish.localDescription.sdp})
                elif kind == "publish_answer":
                    await publish.setRemoteDescription(RTCSessionDescription(message["sdp"], "answer"))
                elif kind == "playback_offer":
                    if playback is not None:
                        await playback.close()
                    playback = connection()
                    playback.on("track", lambda track: tasks.append(asyncio.ensure_future(count(track, decoded))))
                    await playback.setRemoteDescription(RTCSessionDescription(message["sdp"], "offer"))
                    await playback.setLocalDescription(await playback.createAnswer())
                    await ws.send_json({"type": "playback_answer", "offer": message["offer"], "sdp": playback.localDescription.sdp})
                elif kind == "error":
                    errors.append(message.get("message", message))
    result = {
        "publish": publish.connectionState,
        "playback": playback.connectionState if playback else None,
        "decoded": decoded,
        "errors": errors,
    }
    for task in tasks:
        task.cancel()
    await publish.close()
    if playback is not None:
        await playback.close()
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    asyncio.run(run(sys.argv[1], sys.argv[2], float(sys.argv[3])))
