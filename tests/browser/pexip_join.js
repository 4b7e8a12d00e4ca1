// The bundle entry for Pexip's SDK: docs/pexip-client-api.md §8, verbatim but for `onClient`.
// The SDK's signals do not replay, and the roster (onParticipants) and the remote stream are
// emitted before the call connects, so an observer must be attached before `client.call`.
import {
  ClientCallType, createCallSignals, createInfinityClient, createInfinityClientSignals,
} from '@pexip/infinity';

/** Resolves once the WebRTC PeerConnection is "connected"; rejects on PIN prompt, error or disconnect. */
export function join({ nodeUrl, alias, displayName, pin, mediaStream, bandwidthKbps = 1024, onClient }) {
  const signals = createInfinityClientSignals([], { batchScheduleTimeoutMS: 100, batchBufferSize: 50 });
  const callSignals = createCallSignals([]);
  const client = createInfinityClient(signals, callSignals);
  onClient?.({ client, signals, callSignals });
  return new Promise((resolve, reject) => {
    callSignals.onCallConnected.addOnce(() => resolve({ client, signals, callSignals }));
    signals.onPinRequired.addOnce(({ hasHostPin, hasGuestPin }) =>
      reject(new Error(`PIN required (host=${hasHostPin}, guest=${hasGuestPin})`)));
    signals.onError.addOnce(({ error, errorCode }) => reject(new Error(`${errorCode} ${error}`)));
    signals.onDisconnected.addOnce(({ error, errorCode }) => reject(new Error(`${errorCode} ${error}`)));
    client.call({
      host: nodeUrl,
      node: new URL(nodeUrl).host,
      conferenceAlias: alias,
      displayName,
      pin,
      mediaStream,
      bandwidth: bandwidthKbps,
      callType: ClientCallType.AudioVideo,
    }).catch(reject);
  });
}
