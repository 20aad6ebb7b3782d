// The REST API under /api/v1; every failure becomes an ApiError with a readable message.
import { requireLogin, UI_HEADERS } from "./auth";

export interface Problem {
  path: string;
  message: string;
  line: number | null;
}

export class ApiError extends Error {
  constructor(
    message: string,
    readonly status: number,
    readonly problems: Problem[] = [],
  ) {
    super(message);
  }
}

export const API = "/api/v1";

// numbered pages reach this many results deep; deeper pages follow the `next` cursor
// (common/repository/base.py MAX_RESULT_WINDOW)
export const MAX_RESULT_WINDOW = 10_000;

// dispatched on window when a call fails with a server error or no answer (the health banner
// checks readiness at once)
export const API_FAILED = "lanner:api-failed";

function signalFailure() {
  window.dispatchEvent(new Event(API_FAILED));
}

export async function request<T>(path: string, init: RequestInit = {}): Promise<T> {
  let response: Response;
  try {
    const headers = new Headers(init.headers);
    for (const [name, value] of Object.entries(UI_HEADERS)) headers.set(name, value);
    response = await fetch(API + path, { ...init, headers });
  } catch {
    signalFailure();
    throw new ApiError("The server does not answer: is `lanner server` running?", 0);
  }
  const text = await response.text();
  let body: unknown = null;
  if (text) {
    try {
      body = JSON.parse(text);
    } catch {
      body = text;
    }
  }
  if (!response.ok) {
    if (response.status >= 500) signalFailure();
    if (response.status === 401) requireLogin();
    const data = (body ?? {}) as { message?: string; errors?: Problem[] };
    const message =
      typeof body === "string" && body
        ? body
        : data.message || `${response.status} ${response.statusText}`;
    throw new ApiError(message, response.status, data.errors ?? []);
  }
  return body as T;
}

export function query(params: Record<string, string | number | string[] | undefined | null>): string {
  const search = new URLSearchParams();
  for (const [key, value] of Object.entries(params)) {
    if (value === undefined || value === null || value === "") continue;
    if (Array.isArray(value)) value.forEach((v) => search.append(key, v));
    else search.append(key, String(value));
  }
  const text = search.toString();
  return text ? `?${text}` : "";
}

// ------------------------------------------------------------------ shapes the API returns

export interface StateEntry {
  state: string;
  date: string;
}

export interface StateInfo {
  current: string;
  histories: StateEntry[];
  startDate?: string | null;
  endDate?: string | null;
}

export interface Attempt {
  state: StateInfo;
  workerId?: string;
}

export interface TaskRun {
  id: string;
  taskId: string;
  parentTaskRunId?: string | null;
  value?: string | null;
  state: StateInfo;
  attempts?: Attempt[];
  outputs?: Record<string, unknown> | null;
  error?: string | null;
}

export interface Label {
  key: string;
  value: string;
}

export interface Execution {
  id: string;
  namespace: string;
  flowId: string;
  flowRevision: number;
  state: StateInfo;
  taskRunList?: TaskRun[];
  inputs?: Record<string, unknown> | null;
  outputs?: Record<string, unknown> | null;
  labels?: Label[];
  trigger?: { id: string; type: string } | null;
  originalId?: string | null;
  metadata?: { attemptNumber: number };
  sequence?: number;
}

export interface Page<T> {
  results: T[];
  total: number;
  next?: string | null;
}

export interface FlowInput {
  id: string;
  type: string;
  description?: string;
  displayName?: string;
  required?: boolean;
  defaults?: unknown;
  values?: string[] | string | null;
  options?: string[] | null;
  min?: unknown;
  max?: unknown;
}

export interface Flow {
  id: string;
  namespace: string;
  revision: number;
  description?: string;
  inputs?: FlowInput[];
  tasks?: { id: string; type: string }[];
  triggers?: { id: string; type: string }[];
  labels?: Record<string, string>;
  disabled: boolean;
  updated: string;
  source: string;
}

export interface LogEntry {
  namespace?: string;
  flowId?: string;
  executionId?: string;
  taskId?: string;
  taskRunId?: string;
  attemptNumber?: number;
  timestamp: string;
  level: "TRACE" | "DEBUG" | "INFO" | "WARN" | "ERROR";
  message: string;
}

export const STATES = [
  "CREATED",
  "QUEUED",
  "RUNNING",
  "PAUSED",
  "RETRYING",
  "RETRIED",
  "SUCCESS",
  "WARNING",
  "FAILED",
  "KILLING",
  "KILLED",
  "CANCELLED",
  "SKIPPED",
  "RESTARTED",
];

export const TERMINAL = new Set(["SUCCESS", "WARNING", "FAILED", "KILLED", "CANCELLED", "SKIPPED", "RETRIED"]);

export const LEVELS = ["TRACE", "DEBUG", "INFO", "WARN", "ERROR"] as const;

// Kestra's /triggers/search result: the trigger as declared, and what the scheduler stored
export interface TriggerContext {
  namespace: string;
  flowId: string;
  triggerId: string;
  nextExecutionDate?: string | null;
  lastExecutionId?: string | null;
  lastExecutionDate?: string | null;
  date?: string | null;
  disabled: boolean;
  backfill?: Backfill | null;
  // the evaluation lock of a polling trigger (cleared by an unlock)
  evaluateRunningDate?: string | null;
}

export interface Backfill {
  start: string;
  end?: string | null;
  currentDate?: string | null;
  paused?: boolean;
  inputs?: Record<string, unknown> | null;
  labels?: Record<string, string> | null;
}

export interface TriggerItem {
  abstractTrigger: { id: string; type: string } & Record<string, unknown>;
  triggerContext: TriggerContext;
  flowDisabled: boolean;
  triggerDisabled: boolean;
}

// ------------------------------------------------------------------ trigger changes
// Each answers the trigger's context as it will be once the scheduler applied the change (its
// next tick); /triggers/search shows it only after that.

export interface TriggerKey {
  namespace: string;
  flowId: string;
  triggerId: string;
}

export interface BackfillCreate {
  start: string;
  end?: string;
  inputs?: Record<string, unknown>;
  labels?: { key: string; value: string }[];
}

function sendJson<T>(path: string, method: string, body: unknown): Promise<T> {
  return request<T>(path, { method, headers: { "Content-Type": "application/json" }, body: JSON.stringify(body) });
}

export function setTriggerDisabled(key: TriggerKey, disabled: boolean): Promise<TriggerContext> {
  return sendJson("/triggers", "PUT", { ...key, disabled });
}

export function createBackfill(key: TriggerKey, backfill: BackfillCreate): Promise<TriggerContext> {
  return sendJson("/triggers", "PUT", { ...key, backfill });
}

export type BackfillAction = "pause" | "unpause" | "delete";

export function changeBackfill(key: TriggerKey, action: BackfillAction): Promise<TriggerContext> {
  return sendJson(`/triggers/backfill/${action}`, action === "delete" ? "POST" : "PUT", key);
}

export function unlockTrigger(key: TriggerKey): Promise<TriggerContext> {
  const path = [key.namespace, key.flowId, key.triggerId].map(encodeURIComponent).join("/");
  return request(`/triggers/${path}/unlock`, { method: "POST" });
}
