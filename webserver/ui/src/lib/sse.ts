// An EventSource that stops when the server ends the stream (EventSource would reconnect and
// replay it) and when the caller closes it; onEnd runs only when the server ended it. onOpen
// runs once the server answered: our streams subscribe before answering, so from then on
// nothing published is missed.
export function follow<T>(
  url: string,
  onData: (data: T) => void,
  onEnd: () => void = () => {},
  onOpen: () => void = () => {},
): () => void {
  const source = new EventSource(url);
  source.onopen = () => onOpen();
  let open = true;
  const close = () => {
    if (!open) return;
    open = false;
    source.close();
  };
  source.onmessage = (event) => {
    try {
      onData(JSON.parse(event.data) as T);
    } catch {
      // a keepalive or a malformed event: nothing to show
    }
  };
  source.onerror = () => {
    if (!open) return;
    close();
    onEnd();
  };
  return close;
}
