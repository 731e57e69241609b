// The dashboard's calls: the Admin API through /ui/admin (the session cookie and the
// CSRF token stand in for the admin key), and the dashboard's own /ui/api.

export const session = {csrf: null, gateway: null, defaultGateway: null, gateways: [], lastKey: null};

export class ApiError extends Error {
  constructor(status, body) {
    super(body?.error?.message || `HTTP ${status}`);
    this.status = status;
    this.body = body;
  }
}

export async function call(method, url, body) {
  const headers = {accept: "application/json"};
  if (body !== undefined) headers["content-type"] = "application/json";
  if (method !== "GET" && session.csrf) headers["x-csrf-token"] = session.csrf;
  const answer = await fetch(url, {
    method,
    headers,
    credentials: "same-origin",
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await answer.text();
  const data = text ? JSON.parse(text) : null;
  if (!answer.ok) {
    if (answer.status === 401 && url !== "/ui/api/login") window.dispatchEvent(new Event("sluicegate:logged-out"));
    throw new ApiError(answer.status, data);
  }
  return data;
}

// An Admin API path for the gateway picked in the header.
export function admin(path) {
  const gw = session.gateway && session.gateway !== session.defaultGateway
    ? `/gateways/${encodeURIComponent(session.gateway)}` : "";
  return `/ui/admin${gw}${path}`;
}

// Where the data plane of the picked gateway answers (for the playground).
export function dataPlane(path) {
  const gw = session.gateway && session.gateway !== session.defaultGateway
    ? `/gw/${encodeURIComponent(session.gateway)}` : "";
  return `${gw}${path}`;
}

export const get = (url) => call("GET", url);

// Every page of a list endpoint ({data, next}).
export async function all(path) {
  const items = [];
  let next = null;
  do {
    const sep = path.includes("?") ? "&" : "?";
    const page = await get(admin(path) + (next ? `${sep}after=${encodeURIComponent(next)}` : ""));
    items.push(...page.data);
    next = page.next;
  } while (next);
  return items;
}
