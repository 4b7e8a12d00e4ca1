// The join page: a plain browser client of the node's Pexip-compatible client API
// (/api/client/v2/conferences/<alias>/…). The alias is the link token in the page URL, so the
// link alone decides the room and the role. No framework, no build step.
"use strict";

(() => {
  const STATE = Object.freeze({
    NAME: "name", PIN: "pin", LOBBY: "lobby", MEETING: "meeting", LEFT: "left",
  });
  // Pexip's SDK retries a failed event stream from 100 ms up to 30 s, at most 8 times.
  const SSE_RETRY_FIRST_MS = 100;
  const SSE_RETRY_MAX_MS = 30000;
  const SSE_RETRIES = 8;

  const $ = (id) => document.getElementById(id);
  const ui = {
    status: $("status"), error: $("error"),
    nameScreen: $("screen-name"), form: $("join-form"), name: $("display-name"),
    pinField: $("pin-field"), pin: $("pin"), joinButton: $("join-button"),
    lobbyScreen: $("screen-lobby"), lobbyMessage: $("lobby-message"),
    callScreen: $("screen-call"), remoteFigure: $("remote-figure"),
    remoteView: $("remote-view"), selfView: $("self-view"),
    micButton: $("mic-button"), cameraButton: $("camera-button"), leaveButton: $("leave-button"),
    roster: $("roster"), list: $("participant-list"), lockButton: $("lock-button"),
    leftScreen: $("screen-left"), leftReason: $("left-reason"),
  };

  // Relative to the page (/j/<token>), so a node mounted under a path prefix still works.
  const match = location.pathname.match(/\/j\/([A-Za-z0-9._~-]+)$/);
  const alias = match ? match[1] : "";
  const base = new URL(`../api/client/v2/conferences/${alias}/`, location.href).href;

  const roster = new Map();
  const session = {
    token: null, me: null, role: null, expires: 120, iceServers: [],
    events: null, sseRetries: 0, refreshTimer: null,
    callUuid: null, acked: false, pendingCandidates: [],
    localStream: null, remoteStream: null, conference: {locked: false, started: false},
    serverMuted: undefined,
  };

  // What tests (and curious developers) can read: the page state, the roster, the connection.
  const confnode = {
    state: STATE.NAME,
    pc: null,
    get participants() { return Array.from(roster.values()); },
  };
  window.confnode = confnode;

  // ---- Screens and announcements -------------------------------------------------------------

  function announce(text) { ui.status.textContent = text; }
  function showError(text) { ui.error.textContent = text; }

  function setState(next) {
    const previous = confnode.state;
    confnode.state = next;
    const inCall = next === STATE.LOBBY || next === STATE.MEETING;
    ui.nameScreen.hidden = !(next === STATE.NAME || next === STATE.PIN);
    ui.pinField.hidden = next !== STATE.PIN;
    ui.lobbyScreen.hidden = next !== STATE.LOBBY;
    ui.callScreen.hidden = !inCall;
    ui.remoteFigure.hidden = next !== STATE.MEETING;
    ui.roster.hidden = !inCall;
    ui.leftScreen.hidden = next !== STATE.LEFT;
    if (next === previous) return;
    // Move focus to the new screen's heading so screen readers follow the change.
    const heading = {
      [STATE.PIN]: ui.pin, [STATE.LOBBY]: $("lobby-heading"),
      [STATE.MEETING]: $("call-heading"), [STATE.LEFT]: $("left-heading"),
    }[next];
    if (heading) heading.focus();
    if (next === STATE.LOBBY) announce(lobbyText());
    if (next === STATE.MEETING) {
      announce("You are in the meeting.");
      ui.remoteView.play().catch(() => {});
    }
  }

  function lobbyText() {
    return session.conference.locked
      ? "The meeting is locked — a host will let you in."
      : "Waiting for the host…";
  }

  function applyServiceType(serviceType) {
    if (confnode.state === STATE.LEFT) return;
    if (serviceType === "waiting_room") {
      setState(STATE.LOBBY);
    } else if (serviceType === "conference") {
      setState(STATE.MEETING);
    }
  }

  // ---- The client API ------------------------------------------------------------------------

  async function api(path, body, {method = "POST", pin = null, auth = true} = {}) {
    const headers = {};
    if (auth) headers.token = session.token;
    if (pin) headers.pin = pin;
    const init = {method, headers, cache: "no-store", credentials: "omit"};
    if (body !== undefined) {
      headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    const response = await fetch(base + path, init);
    const type = response.headers.get("content-type") || "";
    const payload = type.startsWith("application/json") ? await response.json() : null;
    return {status: response.status, result: payload ? payload.result : null};
  }

  async function requestToken(displayName, pin) {
    ui.joinButton.disabled = true;
    showError("");
    announce("Connecting…");
    let answer;
    try {
      answer = await api("request_token", {display_name: displayName}, {pin, auth: false});
    } catch (err) {
      ui.joinButton.disabled = false;
      showError("Could not reach the meeting. Check your connection and try again.");
      return;
    }
    ui.joinButton.disabled = false;
    const result = answer.result;
    if (answer.status === 403 && result && typeof result === "object" && "pin" in result) {
      setState(STATE.PIN);
      announce("This meeting needs a PIN code.");
      return;
    }
    if (answer.status !== 200) {
      const text = typeof result === "string" ? result : `The meeting answered ${answer.status}.`;
      announce("");
      showError(text);
      if (text === "Invalid PIN") {
        ui.pin.value = "";
        ui.pin.focus();
      }
      return;
    }
    session.token = result.token;
    session.me = result.participant_uuid;
    session.role = result.role;
    session.expires = Math.max(3, Number(result.expires) || 120);
    session.iceServers = [];
    if (Array.isArray(result.stun) && result.stun.length) {
      session.iceServers.push({urls: result.stun.map((s) => s.url)});
    }
    if (Array.isArray(result.turn)) session.iceServers.push(...result.turn);
    scheduleRefresh();
    applyServiceType(result.current_service_type);
    openEvents();
    await startMedia();
    try {
      await startCall();
    } catch (err) {
      showError(`The call could not start: ${err.message || err}`);
    }
  }

  // Tokens live `expires` seconds; refresh at a third of that, like Pexip's SDK.
  function scheduleRefresh() {
    clearTimeout(session.refreshTimer);
    session.refreshTimer = setTimeout(refreshToken, (session.expires * 1000) / 3);
  }

  async function refreshToken() {
    if (!session.token || confnode.state === STATE.LEFT) return;
    try {
      const answer = await api("refresh_token");
      if (answer.status === 200) {
        session.token = answer.result.token;
      } else if (answer.status === 403) {
        finish("Your session has ended.", {release: false});
        return;
      }
    } catch (err) {
      // A network blip: try again at the next tick rather than dropping the call.
    }
    scheduleRefresh();
  }

  // ---- Server-sent events --------------------------------------------------------------------

  function openEvents() {
    if (session.events) session.events.close();
    const events = new EventSource(`${base}events?token=${encodeURIComponent(session.token)}`);
    session.events = events;
    const on = (name, handler) => events.addEventListener(name, (e) => {
      let data = null;
      try { data = JSON.parse(e.data); } catch (err) { return; }
      handler(data);
    });
    events.onopen = () => { session.sseRetries = 0; };
    // The stream keeps the token it was opened with; a browser retry would reuse a token that
    // may have been refreshed away, so reopen by hand with the current one.
    events.onerror = () => {
      events.close();
      if (session.events !== events || confnode.state === STATE.LEFT) return;
      if (session.sseRetries >= SSE_RETRIES) {
        finish("The connection to the meeting was lost.");
        return;
      }
      const wait = Math.min(SSE_RETRY_MAX_MS, SSE_RETRY_FIRST_MS * 2 ** session.sseRetries);
      session.sseRetries += 1;
      setTimeout(() => { if (session.events === events) openEvents(); }, wait);
    };
    on("participant_sync_begin", () => roster.clear());
    on("participant_create", upsertParticipant);
    on("participant_update", upsertParticipant);
    on("participant_delete", (data) => { roster.delete(data.uuid); renderRoster(); });
    on("participant_sync_end", () => renderRoster());
    on("conference_update", (data) => {
      session.conference = data;
      if (confnode.state === STATE.LOBBY) {
        ui.lobbyMessage.textContent = lobbyText();
        announce(lobbyText());
      }
      renderRoster();
    });
    on("disconnect", (data) => finish((data && data.reason) || "You were disconnected."));
    on("call_disconnected", (data) => {
      if (data && data.call_uuid === session.callUuid) closeCall();
    });
    on("refresh_token", () => refreshToken());
    on("new_candidate", (data) => {
      if (!confnode.pc || !data || !data.candidate) return;
      confnode.pc.addIceCandidate({
        candidate: data.candidate, sdpMid: data.mid, usernameFragment: data.ufrag,
      }).catch(() => {});
    });
  }

  function upsertParticipant(p) {
    if (!p || !p.uuid) return;
    roster.set(p.uuid, p);
    if (p.uuid === session.me) {
      const wasMuted = session.serverMuted;
      session.serverMuted = p.is_muted === "YES";
      if (wasMuted !== undefined && wasMuted !== session.serverMuted) {
        announce(session.serverMuted ? "A host muted you." : "A host unmuted you.");
      }
      applyServiceType(p.service_type);
    }
    renderRoster();
  }

  // ---- Roster and host controls --------------------------------------------------------------

  function iAmHost() {
    const me = roster.get(session.me);
    return me ? me.role === "chair" : session.role === "HOST";
  }

  function renderRoster() {
    if (confnode.state === STATE.LEFT) return;
    const host = iAmHost();
    ui.list.replaceChildren(...Array.from(roster.values()).map((p) => participantItem(p, host)));
    ui.lockButton.hidden = !host;
    const locked = Boolean(session.conference.locked);
    ui.lockButton.textContent = locked ? "Unlock the meeting" : "Lock the meeting";
    ui.lockButton.setAttribute("aria-pressed", String(locked));
  }

  function participantItem(p, host) {
    const item = document.createElement("li");
    item.dataset.uuid = p.uuid;
    const waiting = p.service_type === "waiting_room";
    const name = document.createElement("span");
    name.className = "name";
    name.textContent = p.display_name + (p.uuid === session.me ? " (you)" : "");
    const details = [p.role === "chair" ? "host" : "guest"];
    if (waiting) details.push("waiting");
    if (p.is_muted === "YES") details.push("muted");
    const info = document.createElement("span");
    info.className = "details";
    info.textContent = details.join(", ");
    item.append(name, " ", info);
    if (host && p.uuid !== session.me) {
      if (waiting) item.append(actionButton("admit", "Admit", p, `participants/${p.uuid}/unlock`));
      if (!waiting) {
        const muted = p.is_muted === "YES";
        item.append(actionButton(muted ? "unmute" : "mute", muted ? "Unmute" : "Mute", p,
          `participants/${p.uuid}/${muted ? "unmute" : "mute"}`));
      }
      item.append(actionButton("disconnect", "Disconnect", p,
        `participants/${p.uuid}/disconnect`));
    }
    return item;
  }

  function actionButton(action, label, p, path) {
    const button = document.createElement("button");
    button.type = "button";
    button.dataset.action = action;
    button.textContent = label;
    button.setAttribute("aria-label", `${label} ${p.display_name}`);
    button.addEventListener("click", async () => {
      button.disabled = true;
      try {
        const answer = await api(path);
        if (answer.status !== 200) showError(String(answer.result || "The action failed."));
      } catch (err) {
        showError("The action failed. Check your connection.");
      }
      button.disabled = false;
    });
    return button;
  }

  ui.lockButton.addEventListener("click", async () => {
    const locking = !session.conference.locked;
    const answer = await api(locking ? "lock" : "unlock").catch(() => null);
    if (!answer || answer.status !== 200) showError("Could not change the lock.");
    else announce(locking ? "The meeting is locked." : "The meeting is unlocked.");
  });

  // ---- Media and the WebRTC call -------------------------------------------------------------

  async function startMedia() {
    const attempts = [{audio: true, video: true}, {audio: true, video: false}];
    for (const constraints of attempts) {
      try {
        session.localStream = await navigator.mediaDevices.getUserMedia(constraints);
        break;
      } catch (err) {
        session.localStream = null;
      }
    }
    if (!session.localStream) {
      announce("No camera or microphone: you can see and hear the others, but not be heard.");
      return;
    }
    ui.selfView.srcObject = session.localStream;
    ui.selfView.play().catch(() => {});
    ui.micButton.disabled = !session.localStream.getAudioTracks().length;
    ui.cameraButton.disabled = !session.localStream.getVideoTracks().length;
  }

  async function startCall() {
    const config = {bundlePolicy: "max-bundle"};
    if (session.iceServers.length) config.iceServers = session.iceServers;
    const pc = new RTCPeerConnection(config);
    confnode.pc = pc;
    const tracks = session.localStream ? session.localStream.getTracks() : [];
    for (const track of tracks) pc.addTrack(track, session.localStream);
    for (const kind of ["audio", "video"]) {
      if (!tracks.some((t) => t.kind === kind)) pc.addTransceiver(kind, {direction: "recvonly"});
    }
    session.remoteStream = new MediaStream();
    ui.remoteView.srcObject = session.remoteStream;
    pc.ontrack = (e) => {
      session.remoteStream.addTrack(e.track);
      ui.remoteView.play().catch(() => {});
    };
    pc.onicecandidate = (e) => {
      const candidate = e.candidate
        ? {candidate: e.candidate.candidate, mid: e.candidate.sdpMid || "0",
           ufrag: e.candidate.usernameFragment || undefined}
        : {candidate: "", mid: "0"};  // end of candidates
      if (session.acked) sendCandidate(candidate);
      else session.pendingCandidates.push(candidate);
    };
    pc.onconnectionstatechange = () => {
      if (pc.connectionState === "failed" && confnode.state !== STATE.LEFT) {
        showError("The media connection failed.");
      }
    };
    await pc.setLocalDescription(await pc.createOffer());
    const offer = await api(`participants/${session.me}/calls`, {
      call_type: "WEBRTC", sdp: pc.localDescription.sdp, media_type: "video",
    });
    if (offer.status !== 200) throw new Error(String(offer.result || offer.status));
    if (confnode.pc !== pc) return;  // left while the offer was in flight
    session.callUuid = offer.result.call_uuid;
    await pc.setRemoteDescription({type: "answer", sdp: offer.result.sdp});
    const ack = await api(`participants/${session.me}/calls/${session.callUuid}/ack`, {});
    if (ack.status !== 200) throw new Error(String(ack.result || ack.status));
    session.acked = true;
    for (const candidate of session.pendingCandidates.splice(0)) sendCandidate(candidate);
  }

  function sendCandidate(candidate) {
    if (!session.callUuid) return;
    api(`participants/${session.me}/calls/${session.callUuid}/new_candidate`, candidate)
      .catch(() => {});
  }

  function closeCall() {
    if (confnode.pc) confnode.pc.close();
    session.acked = false;
    session.pendingCandidates = [];
  }

  function toggle(button, tracks, onText, offText) {
    const off = button.getAttribute("aria-pressed") !== "true";
    for (const track of tracks) track.enabled = !off;
    button.setAttribute("aria-pressed", String(off));
    announce(off ? offText : onText);
  }

  ui.micButton.addEventListener("click", () => toggle(ui.micButton,
    session.localStream ? session.localStream.getAudioTracks() : [],
    "Microphone on.", "Microphone muted."));
  ui.cameraButton.addEventListener("click", () => toggle(ui.cameraButton,
    session.localStream ? session.localStream.getVideoTracks() : [],
    "Camera on.", "Camera off."));

  // ---- Leaving -------------------------------------------------------------------------------

  // Leave as Pexip's SDK does: stop the stream and media, hang up the call, release the token.
  async function finish(reason, {release = true, byUser = false} = {}) {
    if (confnode.state === STATE.LEFT) return;
    const {token, callUuid, me} = session;
    clearTimeout(session.refreshTimer);
    if (session.events) session.events.close();
    session.events = null;
    closeCall();
    if (session.localStream) session.localStream.getTracks().forEach((t) => t.stop());
    ui.selfView.srcObject = null;
    ui.remoteView.srcObject = null;
    roster.clear();
    ui.list.replaceChildren();
    ui.leftReason.textContent = byUser ? "" : reason;
    setState(STATE.LEFT);
    announce(byUser ? "You have left the meeting." : reason);
    if (release && token) {
      if (callUuid) {
        await api(`participants/${me}/calls/${callUuid}/disconnect`).catch(() => {});
      }
      await api("release_token", {reason: byUser ? "User initiated disconnect" : reason})
        .catch(() => {});
    }
    session.token = null;
  }

  ui.leaveButton.addEventListener("click", () =>
    finish("User initiated disconnect", {byUser: true}));

  // Closing the tab: a beacon survives the page (the token travels in the query, as Pexip's).
  window.addEventListener("pagehide", () => {
    if (!session.token || confnode.state === STATE.LEFT) return;
    const body = new Blob([JSON.stringify({reason: "Browser closed"})],
      {type: "application/json"});
    navigator.sendBeacon(`${base}release_token?token=${encodeURIComponent(session.token)}`, body);
  });

  // ---- Start ---------------------------------------------------------------------------------

  ui.form.addEventListener("submit", (e) => {
    e.preventDefault();
    const displayName = ui.name.value.trim();
    if (!displayName) {
      showError("Please enter your name.");
      ui.name.focus();
      return;
    }
    const pin = confnode.state === STATE.PIN ? ui.pin.value.trim() : "";
    if (confnode.state === STATE.PIN && !pin) {
      showError("Please enter the PIN code.");
      ui.pin.focus();
      return;
    }
    requestToken(displayName, pin || null);
  });

  if (!alias) {
    ui.joinButton.disabled = true;
    showError("This page needs a meeting link.");
  }
  setState(STATE.NAME);
})();
