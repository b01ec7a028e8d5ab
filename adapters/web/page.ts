const ESCAPES: Record<string, string> = {
  '&': '&amp;',
  '<': '&lt;',
  '>': '&gt;',
  '"': '&quot;',
  "'": '&#39;',
};
const escapeHtml = (s: string) => s.replace(/[&<>"']/g, (c) => ESCAPES[c]!);

/**
 * Security headers of the chat page: scripts and sockets only from the hub itself; styles
 * inline because the widget writes its stylesheet into its shadow root; framed only by the hub
 * itself and the origins in WEB_FRAME_ANCESTORS (a page framed by any site can be dressed up to
 * trick its user into typing into it).
 */
export function pageHeaders(frameAncestors: readonly string[]): Record<string, string> {
  const ancestors = ["'self'", ...frameAncestors].join(' ');
  return {
    'Content-Security-Policy': `default-src 'none'; script-src 'self'; connect-src 'self'; style-src 'unsafe-inline'; img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors ${ancestors}`,
    // For browsers without frame-ancestors. It can only say "this origin": with other origins
    // allowed it is left out (browsers that know frame-ancestors ignore it anyway).
    ...(frameAncestors.length === 0 ? { 'X-Frame-Options': 'SAMEORIGIN' } : {}),
    'X-Content-Type-Options': 'nosniff',
    'Referrer-Policy': 'no-referrer',
  };
}

/** The chat page of one bot: the widget, filling the window. */
export function chatPage(bot: string, title: string): string {
  const t = escapeHtml(title);
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${t}</title>
<link rel="icon" href="data:,">
</head>
<body>
<noscript>This chat needs JavaScript.</noscript>
<script src="/widget.js" data-bot="${escapeHtml(bot)}" data-mode="page" defer></script>
</body>
</html>
`;
}
