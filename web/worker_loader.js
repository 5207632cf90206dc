// The training worker's first script (index.html copies it beside the page). The page fetches
// and compiles the engine's wasm itself, so that it can show how far the download is, and hands
// the compiled module over in its first message; the engine starts on it.
import init from './gdl-lab-worker.js';

self.addEventListener('message', (event) => {
  init({ module_or_path: event.data }).catch((error) => {
    // Thrown from a timer, it reaches the page as the worker's error event (a rejected promise
    // would not), and the page says the worker stopped and why.
    setTimeout(() => { throw error; });
  });
}, { once: true });
