// The shell: login, the gateway picker, and one page at a time (chosen by the URL's #/hash).
import {call, session} from "./api.js";
import {clear, h} from "./dom.js";
import overview from "./pages/overview.js";
import services from "./pages/services.js";
import rules from "./pages/rules.js";
import consumers from "./pages/consumers.js";
import logs from "./pages/logs.js";
import mcp from "./pages/mcp.js";
import playground from "./pages/playground.js";

const PAGES = {overview, services, rules, consumers, mcp, logs, playground};
const $ = (id) => document.getElementById(id);
let leave = null; // the shown page's clean-up (timers)

function showLogin(message = "") {
  if (leave) leave();
  leave = null;
  session.csrf = null;
  $("nav").hidden = true;
  $("session").hidden = true;
  clear($("page"));
  $("login").hidden = false;
  $("login-error").textContent = message;
  $("login-key").focus();
}

async function start() {
  let info = null;
  try {
    info = await call("GET", "/ui/api/session");
  } catch (error) {
    showLogin(error.message);
    return;
  }
  if (!info.logged_in) {
    showLogin();
    return;
  }
  session.csrf = info.csrf;
  session.defaultGateway = info.gateway;
  session.gateways = info.gateways;
  session.gateway = info.gateways.includes(session.gateway) ? session.gateway : info.gateway;
  $("login").hidden = true;
  $("nav").hidden = false;
  $("session").hidden = false;
  const picker = $("gateway");
  clear(picker, session.gateways.map((name) => h("option", {value: name, selected: name === session.gateway}, name)));
  route();
}

function route() {
  if (!session.csrf) return;
  const name = (location.hash.match(/^#\/([a-z]+)/) || [])[1];
  if (!PAGES[name]) {
    location.replace("#/overview");
    return;
  }
  for (const link of document.querySelectorAll("nav a")) {
    if (link.getAttribute("href") === `#/${name}`) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
  if (leave) leave();
  const root = clear($("page"));
  const page = PAGES[name];
  document.title = `${page.title} · sluicegate`;
  root.append(h("h1", {}, page.title));
  leave = page.render(root) || null;
}

$("login-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const key = $("login-key").value;
  try {
    await call("POST", "/ui/api/login", {key});
    $("login-key").value = "";
    await start();
    $("main").focus();
  } catch (error) {
    showLogin(error.message);
  }
});

$("logout").addEventListener("click", async () => {
  try { await call("POST", "/ui/api/logout"); } catch { /* the session is gone either way */ }
  showLogin("Logged out.");
});

$("gateway").addEventListener("change", (event) => {
  session.gateway = event.target.value;
  session.lastKey = null; // a key of one gateway is unknown to the others
  route();
});

window.addEventListener("hashchange", route);
window.addEventListener("sluicegate:logged-out", () => showLogin("Your session has ended; log in again."));
start();
