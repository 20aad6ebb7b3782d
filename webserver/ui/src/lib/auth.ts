// Who the UI is logged in as. The server keeps the session in an HttpOnly cookie (set by
// POST /api/v1/login): fetch, EventSource and download links all send it, and no credential is
// ever readable by the page's scripts. Any API call answering 401 shows the login page.
import { reactive } from "vue";

export interface Me {
  authEnabled: boolean;
  username?: string;
  role?: string;
  tenants?: string[];
}

export const AUTH_REQUIRED = "lanner:auth-required";

export const auth = reactive<{ required: boolean; me: Me | null }>({ required: false, me: null });

export function requireLogin() {
  auth.required = true;
  auth.me = null;
  window.dispatchEvent(new Event(AUTH_REQUIRED));
}

// the header that marks a call as the UI's own: the server answers its 401 without a Basic
// challenge (no browser dialog) and accepts writes through the session cookie only with it
export const UI_HEADERS = { "X-Lanner-UI": "1" };

export async function loadMe(): Promise<Me | null> {
  const response = await fetch("/api/v1/me", { headers: UI_HEADERS, cache: "no-store" });
  if (response.status === 401) {
    requireLogin();
    return null;
  }
  if (!response.ok) return null;
  auth.me = (await response.json()) as Me;
  auth.required = false;
  return auth.me;
}

export async function login(username: string, password: string): Promise<string | null> {
  const response = await fetch("/api/v1/login", {
    method: "POST",
    headers: { ...UI_HEADERS, "Content-Type": "application/json" },
    body: JSON.stringify({ username, password }),
  });
  if (response.status === 401) return "Wrong username or password.";
  if (response.status === 429) {
    // too many failed logins for this user or address: the server says how long to wait
    const seconds = Number(response.headers.get("Retry-After")) || 0;
    const minutes = Math.max(1, Math.ceil(seconds / 60));
    return `Too many failed logins: try again in ${minutes} minute${minutes === 1 ? "" : "s"}.`;
  }
  if (!response.ok) return `The server answered ${response.status} ${response.statusText}.`;
  auth.me = (await response.json()) as Me;
  auth.required = false;
  return null;
}

export async function logout(): Promise<void> {
  await fetch("/api/v1/logout", { method: "POST", headers: UI_HEADERS });
  requireLogin();
}
