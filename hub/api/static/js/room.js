// The co-browsing video room page, for both parties: the agent (logged in to the console) and the
// customer (a link with ?token=). WebRTC between the two browsers; the hub only relays the signals
// (/rooms/{id}/ws). Both sides follow the "perfect negotiation" pattern: whoever adds a track makes
// an offer, and when two offers cross, the polite side (the customer) yields.

const params = new URLSearchParams(location.search);
const token = params.get("token");
const roomId = decodeURIComponent(location.pathname.split("/").filter(Boolean)[1] || "");
const side = token ? "customer" : "agent";

const $ = (id) => document.getElementById(id);
const status = $("room-status");
const remoteVideo = $("remote-video");
const localVideo = $("local-video");
const remoteLabel = $("remote-label");
const errorBox = $("room-error");
const buttons = { camera: $("camera"), screen: $("screen"), microphone: $("microphone"), unmute: $("unmute"), leave: $("leave") };

let ws = null;
let pc = null;
let polite = side === "customer";
let iceServers = [];
let makingOffer = false;
let ignoreOffer = false;
let welcomed = false;
let left = false;
let signals = Promise.resolve(); // signals are handled one after another, in the order they came
const outgoing = new MediaStream(); // what this side sends: at most one video and one audio track
const tracks = { camera: null, screen: null, microphone: null };
const senders = { video: null, audio: null };

document.title = side === "agent" ? "Video room (agent)" : "Video room";
document.body.dataset.side = side;
setState("connecting");

function setState(value, text) {
  document.body.dataset.state = value;
  if (text) status.textContent = text;
}

function showError(message) {
  errorBox.textContent = message;
  errorBox.hidden = !message;
}

function send(message) {
  if (ws && ws.readyState === WebSocket.OPEN) ws.send(JSON.stringify(message));
}

function connect() {
  const scheme = location.protocol === "https:" ? "wss" : "ws";
  const query = token ? `?token=${encodeURIComponent(token)}` : "";
  ws = new WebSocket(`${scheme}://${location.host}/rooms/${encodeURIComponent(roomId)}/ws${query}`);
  ws.addEventListener("message", (event) => {
    let message;
    try {
      message = JSON.parse(event.data);
    } catch {
      return;
    }
    signals = signals.then(() => onMessage(message)).catch((err) => showError(`Connection problem: ${err.message || err}`));
  });
  ws.addEventListener("close", (event) => {
    stopPeer();
    if (left) return;
    if (!welcomed) setState("refused", "You cannot join this room: someone else is already in it, or its link has expired.");
    else if (event.code === 4410) setState("expired", "This room's link has expired.");
    else setState("disconnected", "Disconnected from the room.");
    disableControls();
  });
}

async function onMessage(message) {
  switch (message.type) {
    case "welcome":
      welcomed = true;
      polite = Boolean(message.polite);
      iceServers = Array.isArray(message.ice_servers) ? message.ice_servers : [];
      if (message.peer) startPeer();
      else setState("waiting", side === "agent" ? "Waiting for the customer to open the link…" : "Waiting for the agent…");
      break;
    case "peer-joined":
      startPeer();
      break;
    case "peer-left":
      stopPeer();
      setState("waiting", "The other side left the room.");
      remoteLabel.textContent = "Waiting for the other side…";
      break;
    case "expired":
      setState("expired", "This room's link has expired.");
      break;
    case "description":
      await onDescription(message.data);
      break;
    case "candidate":
      await onCandidate(message.data);
      break;
    default:
      break;
  }
}

function startPeer() {
  stopPeer();
  setState("joining", "The other side is here; connecting…");
  pc = new RTCPeerConnection({ iceServers });
  const connection = pc;
  connection.addEventListener("negotiationneeded", async () => {
    try {
      makingOffer = true;
      await connection.setLocalDescription();
      send({ type: "description", data: connection.localDescription });
    } catch (err) {
      showError(`Could not offer media: ${err.message || err}`);
    } finally {
      makingOffer = false;
    }
  });
  connection.addEventListener("icecandidate", ({ candidate }) => send({ type: "candidate", data: candidate }));
  connection.addEventListener("track", ({ track, streams }) => {
    const stream = streams[0] || new MediaStream([track]);
    if (remoteVideo.srcObject !== stream) remoteVideo.srcObject = stream;
    if (track.kind === "audio") buttons.unmute.hidden = false;
    remoteLabel.textContent = side === "agent" ? "Customer" : "Agent";
    remoteVideo.play().catch(() => {});
  });
  connection.addEventListener("connectionstatechange", () => {
    if (connection !== pc) return;
    if (connection.connectionState === "connected") setState("connected", "Connected.");
    if (connection.connectionState === "failed") setState("failed", "The connection failed; a TURN server may be needed on this network.");
  });
  // whatever this side already shares goes out at once (each addTrack asks for a negotiation)
  for (const kind of ["video", "audio"]) {
    const track = currentTrack(kind);
    if (track) senders[kind] = connection.addTrack(track, outgoing);
  }
}

function stopPeer() {
  if (pc) pc.close();
  pc = null;
  senders.video = null;
  senders.audio = null;
  makingOffer = false;
  ignoreOffer = false;
  remoteVideo.srcObject = null;
}

async function onDescription(description) {
  if (!description) return;
  if (!pc) startPeer();
  const collision = description.type === "offer" && (makingOffer || pc.signalingState !== "stable");
  ignoreOffer = !polite && collision;
  if (ignoreOffer) return;
  await pc.setRemoteDescription(description);
  if (description.type === "offer") {
    await pc.setLocalDescription();
    send({ type: "description", data: pc.localDescription });
  }
}

async function onCandidate(candidate) {
  if (!candidate || !pc) return;
  try {
    await pc.addIceCandidate(candidate);
  } catch (err) {
    if (!ignoreOffer) throw err;
  }
}

function currentTrack(kind) {
  if (kind === "video") return tracks.screen || tracks.camera;
  return tracks.microphone;
}

// A new or changed local track: replace what the sender sends, or add a sender.
async function publish(kind) {
  const track = currentTrack(kind);
  for (const t of outgoing.getTracks()) if (t.kind === kind && t !== track) outgoing.removeTrack(t);
  if (track && !outgoing.getTracks().includes(track)) outgoing.addTrack(track);
  if (kind === "video") localVideo.srcObject = track ? new MediaStream([track]) : null;
  if (!pc) return;
  const sender = senders[kind];
  if (sender) await sender.replaceTrack(track);
  else if (track) senders[kind] = pc.addTrack(track, outgoing);
}

function press(button, on) {
  button.setAttribute("aria-pressed", String(on));
}

async function toggle(name, start) {
  const button = buttons[name];
  showError("");
  if (tracks[name]) {
    tracks[name].stop();
    tracks[name] = null;
    press(button, false);
  } else {
    button.disabled = true;
    try {
      const track = await start();
      tracks[name] = track;
      track.addEventListener("ended", () => {
        // the browser's own "stop sharing" button, or a device unplugged
        if (tracks[name] !== track) return;
        tracks[name] = null;
        press(button, false);
        publish(track.kind);
      });
      press(button, true);
    } catch (err) {
      showError(name === "screen" ? "Screen sharing was not started." : `Could not use the ${name}: ${err.message || err}`);
      return;
    } finally {
      button.disabled = false;
    }
  }
  await publish(name === "microphone" ? "audio" : "video");
}

async function firstTrack(promise) {
  const stream = await promise;
  return stream.getTracks()[0];
}

function disableControls() {
  for (const [name, button] of Object.entries(buttons)) if (name !== "unmute") button.disabled = true;
}

buttons.camera.addEventListener("click", () => toggle("camera", () => firstTrack(navigator.mediaDevices.getUserMedia({ video: true }))));
buttons.screen.addEventListener("click", () => toggle("screen", () => firstTrack(navigator.mediaDevices.getDisplayMedia({ video: true }))));
buttons.microphone.addEventListener("click", () => toggle("microphone", () => firstTrack(navigator.mediaDevices.getUserMedia({ audio: true }))));
buttons.unmute.addEventListener("click", () => {
  remoteVideo.muted = !remoteVideo.muted;
  press(buttons.unmute, !remoteVideo.muted);
  buttons.unmute.textContent = remoteVideo.muted ? "Unmute" : "Mute";
});
buttons.leave.addEventListener("click", () => {
  left = true;
  send({ type: "state", data: "leaving" });
  for (const name of Object.keys(tracks)) {
    tracks[name]?.stop();
    tracks[name] = null;
  }
  stopPeer();
  if (ws) ws.close(1000, "left");
  localVideo.srcObject = null;
  disableControls();
  setState("left", "You left the room.");
});
if (!navigator.mediaDevices?.getDisplayMedia) buttons.screen.hidden = true;

connect();
