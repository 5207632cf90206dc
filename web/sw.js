// gdl-lab's service worker: after one visit, the page opens and trains with the network off.
// scripts/offline_files.py fills in the two constants below at each release build (`./x dist`).
// Each build is one cache, named by the hash of its files, and the page is served from that one
// cache only, so old and new files never mix; a new build's worker waits until the page lets it
// take over (the page offers a reload), then deletes the older caches.
const VERSION = '__VERSION__';
const FILES = __FILES__;
const CACHE = `gdl-lab-${VERSION}`;

self.addEventListener('install', (event) => {
  // 'no-cache' asks the server again for every file (a 304 when the browser's copy is current),
  // so an older build's copy in the HTTP cache never enters this version's cache.
  event.waitUntil(caches.open(CACHE).then((cache) =>
    cache.addAll(FILES.map((file) => new Request(file, { cache: 'no-cache' })))));
});

self.addEventListener('activate', (event) => {
  event.waitUntil(caches.keys()
    .then((names) => Promise.all(names
      .filter((name) => name.startsWith('gdl-lab-') && name !== CACHE)
      .map((name) => caches.delete(name))))
    .then(() => self.clients.claim()));
});

self.addEventListener('message', (event) => {
  if (event.data === 'activate') self.skipWaiting();
});

// Only the page's own files: a request to another origin is not touched (the page's
// Content-Security-Policy refuses those anyway), and a file of this origin that is not in the
// build (none today) goes to the network as it would without a service worker.
self.addEventListener('fetch', (event) => {
  const request = event.request;
  if (request.method !== 'GET' || new URL(request.url).origin !== self.location.origin) return;
  event.respondWith(caches.open(CACHE)
    .then((cache) => cache.match(request, { ignoreSearch: true }))
    .then((hit) => hit || fetch(request)));
});
