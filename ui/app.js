// The dashboard's shell: the hash router (#/live, #/traffic, #/playground, #/config), the admin
// token dialog, and the one decision stream the pages share.
import { openDecisionStream, setToken, token } from './api.js';
import { decisions } from './store.js';
import * as live from './pages/live.js';
import * as traffic from './pages/traffic.js';
import * as playground from './pages/playground.js';
import * as config from './pages/config.js';

const PAGES = { live, traffic, playground, config };
const TITLES = { live: 'Live', traffic: 'Traffic', playground: 'Playground', config: 'Config' };
const main = document.getElementById('main');
const conn = document.getElementById('conn');
const dialog = document.getElementById('token-dialog');
const tokenInput = document.getElementById('token-input');
const tokenError = document.getElementById('token-error');
const tokenRequired = document.documentElement.dataset.tokenRequired === 'true';

let current = null; // {name, unmount}
let stream = null;

function pageName() {
  const name = (location.hash.replace(/^#\/?/, '').split(/[/?]/)[0] || 'live').toLowerCase();
  return PAGES[name] ? name : 'live';
}

function render({ focus = true } = {}) {
  const name = pageName();
  if (current) {
    try {
      current.unmount?.();
    } catch (e) {
      console.warn('unmount failed', e);
    }
  }
  while (main.firstChild) main.firstChild.remove();
  for (const a of document.querySelectorAll('nav a[data-page]')) {
    if (a.dataset.page === name) a.setAttribute('aria-current', 'page');
    else a.removeAttribute('aria-current');
  }
  document.title = `${TITLES[name]} · semrouter`;
  main.dataset.page = name;
  if (tokenRequired && !token()) {
    // Nothing to show (and nothing to ask the router) until the token is given.
    const p = document.createElement('p');
    p.className = 'empty';
    p.textContent = 'This router asks for an admin token. ';
    const b = document.createElement('button');
    b.type = 'button';
    b.textContent = 'Enter the token';
    b.addEventListener('click', () => askToken(''));
    p.append(b);
    main.append(p);
    current = null;
    return;
  }
  const unmount = PAGES[name].mount(main);
  current = { name, unmount };
  if (focus) main.focus({ preventScroll: true });
}

function showState(state) {
  const text = { live: 'live', reconnecting: 'reconnecting…', auth: 'admin token needed', connecting: 'connecting…' };
  conn.textContent = text[state] || state;
  conn.dataset.state = state;
}

function startStream() {
  stream?.close();
  stream = openDecisionStream({
    onDecision: (r) => decisions.add(r),
    onState: (s) => decisions.setState(s),
  });
}

function askToken(message) {
  tokenError.hidden = !message;
  tokenError.textContent = message || '';
  tokenInput.value = '';
  if (!dialog.open) dialog.showModal();
  tokenInput.focus();
}

document.getElementById('token-open').addEventListener('click', () => askToken(''));
document.getElementById('token-clear').addEventListener('click', () => {
  setToken('');
  tokenInput.value = '';
  dialog.close();
});
document.getElementById('token-form').addEventListener('submit', (e) => {
  e.preventDefault();
  const value = tokenInput.value.trim();
  if (!value) return;
  setToken(value);
  dialog.close();
  startStream();
  render();
});

// Any call that gets 401 lands here.
let lastAuthPrompt = 0;
window.addEventListener('semrouter:auth', (e) => {
  decisions.setState('auth');
  const now = Date.now();
  if (dialog.open || now - lastAuthPrompt < 500) return;
  lastAuthPrompt = now;
  askToken(token() ? `The router refused the token: ${e.detail}` : '');
});

decisions.onState(showState);
window.addEventListener('hashchange', () => render());
if (tokenRequired && !token()) {
  showState('auth');
  render({ focus: false });
  askToken('');
} else {
  startStream();
  render({ focus: false });
}
