// A message for the next page: a new flow's save navigates to its own page, which shows it.
let pending = "";

export function setFlash(message: string): void {
  pending = message;
}

export function takeFlash(): string {
  const message = pending;
  pending = "";
  return message;
}
