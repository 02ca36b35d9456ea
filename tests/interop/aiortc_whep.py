"""A WHEP player on aiortc, a WebRTC stack that is no browser.

It offers to receive one audio and one video track, posts the offer (candidates included:
aiortc gathers first) to the WHEP endpoint URL with the Bearer TOKEN, completes the link with
the answer, counts the frames it decodes per kind for SECONDS after connecting (and notes
each change of the video's size: a switch to another member), then DELETEs the session.

Usage: python3 aiortc_whep.py URL TOKEN SECONDS
Prints one JSON line: { post, delete, connected, decoded: { audio, video }, started_unix_ms,
sizes: [[ms since started_unix_ms, width, height], ...], errors }.
"""

import asyncio
import json
import sys
import time
import urllib.parse

import aiohttp
from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription


async def count(track, result, started):
    sizes = result["sizes"]
    try:
        while True:
            frame = await track.recv()
            result["decoded"][track.kind] += 1
            if track.kind == "video" and (not sizes or sizes[-1][1:] != [frame.width, frame.height]):
                at = round((asyncio.get_running_loop().time() - started) * 1000)
                sizes.append([at, frame.width, frame.height])
    except Exception:  # the track ended
        pass


async def run(url, token, seconds):
    result = {"errors": [], "decoded": {"audio": 0, "video": 0}, "sizes": []}
    started = asyncio.get_running_loop().time()
    result["started_unix_ms"] = round(time.time() * 1000)
    auth = {"Authorization": f"Bearer {token}"}
    # No STUN server (aiortc would otherwise ask Google's): the node is on this machine.
    pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    pc.addTransceiver("audio", direction="recvonly")
    pc.addTransceiver("video", direction="recvonly")
    tasks = []
    connected = asyncio.Event()

    @pc.on("track")
    def on_track(track):
        tasks.append(asyncio.ensure_future(count(track, result, started)))

    @pc.on("connectionstatechange")
    def on_state():
        if pc.connectionState == "connected":
            connected.set()

    await pc.setLocalDescription(await pc.createOffer())
    async with aiohttp.ClientSession() as http:
        headers = {**auth, "Content-Type": "application/sdp"}
        async with http.post(url, data=pc.localDescription.sdp, headers=headers) as response:
            result["post"] = response.status
            answer = await response.text()
            location = response.headers.get("Location")
        if result["post"] != 201 or not location:
            result["errors"].append(f"POST: {result['post']} {answer}")
            return result
        session = urllib.parse.urljoin(url, location)
        await pc.setRemoteDescription(RTCSessionDescription(sdp=answer, type="answer"))
        try:
            await asyncio.wait_for(connected.wait(), timeout=20)
            result["connected"] = True
            await asyncio.sleep(seconds)
        except asyncio.TimeoutError:
            result["connected"] = False
            result["errors"].append(f"not connected: {pc.connectionState}")
        async with http.delete(session, headers=auth) as response:
            result["delete"] = response.status
    for task in tasks:
        task.cancel()
    await pc.close()
    return result


def main():
    url, token, seconds = sys.argv[1], sys.argv[2], int(sys.argv[3])
    print(json.dumps(asyncio.run(run(url, token, seconds))))


if __name__ == "__main__":
    main()
