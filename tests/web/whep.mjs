// Chromium as a WHEP player on another origin than the node's: it watches a room through the
// node's /whep endpoint with the node's token (CORS preflight included), counts what it
// decodes for `seconds`, then DELETEs its session.
//
// Input: { origin, url, token, seconds }: `origin` is the page the player runs in (any page
// of another origin), `url` the WHEP endpoint. Output: { post, location, state, video_frames,
// audio_packets, delete }.
import { main, openPage } from "./lib.mjs";

main(async (browser, input) => {
  const page = await openPage(browser, input.origin);
  return await page.evaluate(async ({ url, token, seconds }) => {
    const auth = { Authorization: `Bearer ${token}` };
    const pc = new RTCPeerConnection();
    pc.addTransceiver("audio", { direction: "recvonly" });
    pc.addTransceiver("video", { direction: "recvonly" });
    pc.ontrack = (event) => {
      const element = document.createElement(event.track.kind);
      element.muted = true;
      element.autoplay = true;
      element.srcObject = new MediaStream([event.track]);
      document.body.appendChild(element);
      element.play().catch(() => {});
    };
    await pc.setLocalDescription(await pc.createOffer());
    // No trickling here: the offer goes once gathering is over (or after a second).
    await new Promise((done) => {
      if (pc.iceGatheringState === "complete") done();
      pc.onicegatheringstatechange = () => pc.iceGatheringState === "complete" && done();
      setTimeout(done, 1000);
    });
    const response = await fetch(url, {
      method: "POST",
      headers: { ...auth, "Content-Type": "application/sdp" },
      body: pc.localDescription.sdp,
    });
    const post = response.status;
    const answer = await response.text();
    const location = response.headers.get("Location");
    if (post !== 201) return { post, answer };
    await pc.setRemoteDescription({ type: "answer", sdp: answer });
    await new Promise((done) => setTimeout(done, seconds * 1000));
    let video_frames = 0;
    let audio_packets = 0;
    (await pc.getStats()).forEach((report) => {
      if (report.type !== "inbound-rtp") return;
      if (report.kind === "video") video_frames = report.framesDecoded ?? 0;
      if (report.kind === "audio") audio_packets = report.packetsReceived ?? 0;
    });
    const state = pc.connectionState;
    const ended = await fetch(new URL(location, url), { method: "DELETE", headers: auth });
    pc.close();
    return { post, location, state, video_frames, audio_packets, delete: ended.status };
  }, input);
});
