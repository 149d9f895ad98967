// Swagger UI on the description the gateway generates (GET /openapi.json).
// Without swagger-ui-dist installed (see docs/api.md) the page keeps its
// link to the JSON and says why.
'use strict';
window.addEventListener('DOMContentLoaded', () => {
  const root = document.getElementById('swagger-ui');
  if (typeof window.SwaggerUIBundle !== 'function') {
    const p = document.createElement('p');
    p.textContent = 'Swagger UI is not installed on this server (swagger-ui-dist; see docs/api.md).';
    root.appendChild(p);
    return;
  }
  window.ui = window.SwaggerUIBundle({
    url: '/openapi.json',
    dom_id: '#swagger-ui',
    deepLinking: true,
  });
});
