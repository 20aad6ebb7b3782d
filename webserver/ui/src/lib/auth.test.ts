import { afterEach, describe, expect, it, vi } from "vitest";
import { flushPromises, mount } from "@vue/test-utils";
import LoginPage from "../pages/LoginPage.vue";
import { ApiError, request } from "./api";
import { auth } from "./auth";

function answer(status: number, body: unknown = {}) {
  return new Response(JSON.stringify(body), { status, headers: { "Content-Type": "application/json" } });
}

afterEach(() => {
  vi.unstubAllGlobals();
  auth.required = false;
  auth.me = null;
});

describe("request", () => {
  it("marks its calls as the UI's and asks for a login on 401", async () => {
    const fetchMock = vi.fn(async () => answer(401, { message: "authentication required" }));
    vi.stubGlobal("fetch", fetchMock);
    await expect(request("/flows/search")).rejects.toBeInstanceOf(ApiError);
    const init = (fetchMock.mock.calls[0] as unknown as [string, RequestInit])[1];
    expect(new Headers(init.headers).get("X-Lanner-UI")).toBe("1");
    expect(auth.required).toBe(true);
  });
});

describe("LoginPage", () => {
  it("says so on a wrong password and logs in with the right one", async () => {
    const fetchMock = vi
      .fn()
      .mockResolvedValueOnce(answer(401))
      .mockResolvedValueOnce(answer(200, { authEnabled: true, username: "ada", role: "admin", tenants: ["*"] }));
    vi.stubGlobal("fetch", fetchMock);
    auth.required = true;
    const page = mount(LoginPage);
    await page.find("input[name=username]").setValue("ada");
    await page.find("input[name=password]").setValue("nope");
    await page.find("form").trigger("submit");
    await flushPromises();
    expect(page.find("[data-testid=login-error]").text()).toContain("Wrong username or password");
    await page.find("input[name=password]").setValue("right");
    await page.find("form").trigger("submit");
    await flushPromises();
    expect(page.emitted("logged-in")).toHaveLength(1);
    expect(auth.required).toBe(false);
    expect(auth.me?.username).toBe("ada");
    const body = JSON.parse((fetchMock.mock.calls[1] as [string, RequestInit])[1].body as string);
    expect(body).toEqual({ username: "ada", password: "right" });
  });
});

describe("login", () => {
  it("says how long to wait after too many failed logins (429)", async () => {
    const throttled = new Response(JSON.stringify({ message: "too many failed logins" }), {
      status: 429,
      headers: { "Content-Type": "application/json", "Retry-After": "290" },
    });
    vi.stubGlobal("fetch", vi.fn(async () => throttled));
    auth.required = true;
    const page = mount(LoginPage);
    await page.find("input[name=username]").setValue("ada");
    await page.find("input[name=password]").setValue("nope");
    await page.find("form").trigger("submit");
    await flushPromises();
    expect(page.find("[data-testid=login-error]").text()).toContain(
      "Too many failed logins: try again in 5 minutes",
    );
    expect(auth.required).toBe(true);
  });
});
