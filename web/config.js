// Where the API lives.  Empty: the same origin that serves this page (the
// built-in gateway).  Behind PostgREST on another origin, put its root URL
// here, e.g. 'http://localhost:3000/', and add that origin to connect-src
// in index.html's Content-Security-Policy.
export default {
  apiBase: '',
  pollMilliseconds: 2000,
  pageSize: 12,
};
