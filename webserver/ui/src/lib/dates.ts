// A datetime-local value is the user's local time: the API takes an instant.
export function isoDate(local: string): string | undefined {
  if (!local) return undefined;
  const date = new Date(local);
  return Number.isNaN(date.getTime()) ? undefined : date.toISOString();
}
