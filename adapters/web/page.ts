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
 * inline because the widget writes its stylesheet into its shadow root.
 */
export const PAGE_CSP =
  "default-src 'none'; script-src 'self'; connect-src 'self'; style-src 'unsafe-inline'; img-src 'self' data:; base-uri 'none'; form-action 'none'";

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
