// The program a live broadcaster's page composes while guests are on its stage: its camera and
// each guest's in one picture, their sounds mixed, sent to its node over a link of its own for
// the audience. The node keeps sending the guests the page's own tracks: a guest must never
// hear its own voice come back (a studio's mix-minus).

// Each member's tile in the picture, and the picture's frame rate.
const TILE = { width: 640, height: 360 };
const FPS = 15;

export class Program {
  constructor() {
    this.canvas = document.createElement("canvas");
    this.context = this.canvas.getContext("2d");
    this.audio = new AudioContext();
    // Composed without a click of its own (a guest arriving): the page was clicked before.
    this.audio.resume().catch(() => {});
    this.mix = this.audio.createMediaStreamDestination();
    this.sounds = new Map(); // audio track id -> its node in the mix
    this.pictures = new Map(); // video track id -> the element it is drawn from
    this.order = [];
    this.layout(1);
    this.video = this.canvas.captureStream(FPS).getVideoTracks()[0];
    // The audience sees a layout: short of bandwidth, the frame rate gives way, not the size
    // (else the picture starts small and grows as the link's estimate does).
    this.video.contentHint = "detail";
    this.timer = setInterval(() => this.draw(), 1000 / FPS);
    this.pc = null;
  }

  // The tracks to send: the mix, then the picture.
  tracks() {
    return [this.mix.stream.getAudioTracks()[0], this.video];
  }

  // Shows `members` ([{ video, audio }] tracks, the broadcaster first) from now on.
  show(members) {
    const videos = members.map((m) => m.video).filter(Boolean);
    const audios = members.map((m) => m.audio).filter(Boolean);
    for (const [id, element] of this.pictures) {
      if (!videos.some((t) => t.id === id)) {
        element.srcObject = null;
        this.pictures.delete(id);
      }
    }
    for (const track of videos) {
      if (this.pictures.has(track.id)) continue;
      const element = document.createElement("video");
      element.muted = true;
      element.playsInline = true;
      element.srcObject = new MediaStream([track]);
      element.play().catch(() => {});
      this.pictures.set(track.id, element);
    }
    for (const [id, node] of this.sounds) {
      if (!audios.some((t) => t.id === id)) {
        node.disconnect();
        this.sounds.delete(id);
      }
    }
    for (const track of audios) {
      if (this.sounds.has(track.id)) continue;
      const node = this.audio.createMediaStreamSource(new MediaStream([track]));
      node.connect(this.mix);
      this.sounds.set(track.id, node);
    }
    this.order = videos.map((t) => t.id);
    this.layout(this.order.length);
    this.draw();
  }

  // Two tiles a row: one member alone fills the picture, two side by side, more in a grid.
  layout(count) {
    const columns = count > 1 ? 2 : 1;
    const rows = Math.max(1, Math.ceil(count / columns));
    const [width, height] = [TILE.width * columns, TILE.height * rows];
    if (this.canvas.width !== width) this.canvas.width = width;
    if (this.canvas.height !== height) this.canvas.height = height;
    this.columns = columns;
  }

  draw() {
    const { context } = this;
    context.fillStyle = "#000";
    context.fillRect(0, 0, this.canvas.width, this.canvas.height);
    this.order.forEach((id, index) => {
      const element = this.pictures.get(id);
      if (!element || element.readyState < 2) return;
      const x = (index % this.columns) * TILE.width;
      const y = Math.floor(index / this.columns) * TILE.height;
      // Fitted, not cropped: a guest's whole picture shows.
      const scale = Math.min(TILE.width / element.videoWidth, TILE.height / element.videoHeight);
      const [w, h] = [element.videoWidth * scale, element.videoHeight * scale];
      context.drawImage(element, x + (TILE.width - w) / 2, y + (TILE.height - h) / 2, w, h);
    });
  }

  close() {
    clearInterval(this.timer);
    this.pc?.close();
    this.video.stop();
    for (const element of this.pictures.values()) element.srcObject = null;
    this.audio.close().catch(() => {});
  }
}
