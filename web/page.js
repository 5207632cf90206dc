// The page's own JavaScript, for two browser APIs this crate has no web-sys binding enabled for
// (enabling one rebuilds burn, which shares web-sys): a download that reports how far it is,
// and the service worker that keeps the page working offline.

// Fetches the engine's wasm, calling on_progress(done, total) as bytes arrive (at most every
// 100 ms; total is 0 when neither the build nor the server says it), then compiles it. A
// compiled module is what the worker starts on. The last call has done == total.
export async function download_module(url, expected_bytes, on_progress) {
  const response = await fetch(url);
  if (!response.ok) throw new Error(`${url} answered ${response.status} ${response.statusText}`);
  // A compressed response's Content-Length counts compressed bytes; the stream gives them
  // decompressed.
  const length = response.headers.get('Content-Encoding')
    ? 0 : Number(response.headers.get('Content-Length') || 0);
  const total = expected_bytes > 0 ? expected_bytes : length;
  const chunks = [];
  let received = 0;
  let reported = 0;
  on_progress(0, total);
  const reader = response.body.getReader();
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    chunks.push(value);
    received += value.length;
    if (performance.now() - reported > 100) {
      reported = performance.now();
      on_progress(received, Math.max(total, received));
    }
  }
  on_progress(received, received);
  const bytes = new Uint8Array(received);
  let at = 0;
  for (const chunk of chunks) {
    bytes.set(chunk, at);
    at += chunk.length;
  }
  return WebAssembly.compile(bytes);
}

// Registers the service worker that `./x dist` writes (sw.js), which keeps this version of the
// page for offline use. on_state gets 'saved' once this version works offline and 'update'
// when a newer version is saved and waits for a reload.
export function register_offline_copy(on_state) {
  if (!('serviceWorker' in navigator) || !window.isSecureContext) return;
  navigator.serviceWorker.register('./sw.js').then((registration) => {
    const tell = () => {
      if (registration.waiting && navigator.serviceWorker.controller) on_state('update');
      else if (registration.active) on_state('saved');
    };
    const watch = (incoming) => incoming?.addEventListener('statechange', () => {
      if (incoming.state === 'installed' || incoming.state === 'activated') tell();
    });
    navigator.serviceWorker.ready.then(tell);
    // A newer version may be installing already (the check runs at each visit) or later.
    watch(registration.installing);
    registration.addEventListener('updatefound', () => watch(registration.installing));
  }, (error) => console.warn('gdl-lab: the offline copy could not be saved:', error));
}

// Lets the newer version take over, then reloads the page on it.
export function use_new_version() {
  navigator.serviceWorker.getRegistration().then((registration) => {
    if (!registration?.waiting) {
      location.reload();
      return;
    }
    navigator.serviceWorker.addEventListener('controllerchange', () => location.reload(),
      { once: true });
    registration.waiting.postMessage('activate');
  });
}
