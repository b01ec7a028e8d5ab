/** The widget's styles, inside its shadow root: the host page's CSS cannot reach in, nor ours out. */
export const STYLES = `
:host { all: initial; }
* { box-sizing: border-box; }
.root { font: 15px/1.4 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: #1c1e21; }
.panel { display: flex; flex-direction: column; background: #fff; overflow: hidden; position: relative; }
.page .panel { position: fixed; inset: 0; }
.embed .panel { position: fixed; right: 20px; bottom: 88px; width: 370px; height: min(600px, calc(100vh - 110px));
  border-radius: 12px; box-shadow: 0 8px 30px rgba(0,0,0,.25); z-index: 2147483646; }
.embed .panel[hidden] { display: none; }
.launcher { position: fixed; right: 20px; bottom: 20px; width: 56px; height: 56px; border-radius: 50%; border: 0;
  background: #0b5cad; color: #fff; font-size: 26px; cursor: pointer; box-shadow: 0 4px 14px rgba(0,0,0,.3);
  z-index: 2147483647; display: flex; align-items: center; justify-content: center; }
.launcher .icon { width: 28px; height: 28px; }
.icon { display: block; flex: none; }
header button.close { display: flex; align-items: center; padding: 2px; }
header button.close .icon { width: 18px; height: 18px; }
header { display: flex; align-items: center; gap: 8px; padding: 10px 12px; background: #0b5cad; color: #fff; }
h2 { flex: 1; margin: 0; font-size: 16px; font-weight: 600; overflow: hidden; text-overflow: ellipsis; white-space: nowrap; }
.status { font-size: 12px; opacity: .9; }
.status::before { content: ""; display: inline-block; width: 8px; height: 8px; border-radius: 50%; margin-right: 5px;
  background: #f0ad4e; }
.status[data-state="online"]::before { background: #5cd65c; }
.status[data-state="offline"]::before, .status[data-state="failed"]::before { background: #ff6b6b; }
header button { background: transparent; color: #fff; border: 1px solid rgba(255,255,255,.6); border-radius: 6px;
  padding: 4px 8px; font: inherit; font-size: 12px; cursor: pointer; }
.log { flex: 1; overflow-y: auto; margin: 0; padding: 12px; list-style: none; display: flex; flex-direction: column;
  gap: 8px; background: #f5f6f8; }
.msg { max-width: 85%; padding: 8px 12px; border-radius: 14px; white-space: pre-wrap; overflow-wrap: anywhere; }
.assistant, .agent { align-self: flex-start; background: #fff; border: 1px solid #e1e3e8; }
.user { align-self: flex-end; background: #0b5cad; color: #fff; }
.system { align-self: center; font-size: 12px; color: #5c6370; background: none; }
.pending { opacity: .7; }
.note { display: block; font-size: 11px; margin-top: 2px; }
.failed { background: #b3261e; }
.typing { padding: 0 14px 6px; font-size: 13px; color: #5c6370; background: #f5f6f8; min-height: 1.4em; }
.suggestions { display: flex; flex-wrap: wrap; gap: 6px; padding: 6px 12px; background: #f5f6f8; }
.suggestions:empty, .ended[hidden] { display: none; }
.suggestions button, .ended button { border: 1px solid #0b5cad; color: #0b5cad; background: #fff; border-radius: 16px;
  padding: 5px 12px; font: inherit; font-size: 14px; cursor: pointer; }
.ended { padding: 10px 12px; text-align: center; background: #fff4e5; }
form { display: flex; gap: 8px; padding: 10px; border-top: 1px solid #e1e3e8; background: #fff; }
textarea { flex: 1; resize: none; font: inherit; padding: 8px 10px; border: 1px solid #c4c8d0; border-radius: 8px;
  max-height: 120px; }
form button { border: 0; border-radius: 8px; padding: 0 16px; background: #0b5cad; color: #fff; font: inherit;
  cursor: pointer; }
button:focus-visible, textarea:focus-visible { outline: 3px solid #ffbf47; outline-offset: 1px; }
.sr-only { position: absolute; width: 1px; height: 1px; overflow: hidden; clip: rect(0 0 0 0); white-space: nowrap; }
.msg.rich { display: flex; flex-direction: column; gap: 6px; }
.msg .image { padding: 0; border: 0; background: none; cursor: zoom-in; border-radius: 8px; overflow: hidden; }
.msg .image img { display: block; max-width: 100%; max-height: 240px; border-radius: 8px; }
.file { display: inline-flex; align-items: center; gap: 6px; color: inherit; text-decoration: none; padding: 6px 8px;
  border: 1px solid currentColor; border-radius: 8px; }
.file .icon, .chip .icon { width: 18px; height: 18px; }
.file .size, .chip .size { opacity: .75; font-size: 12px; }
.card { background: #fff; color: #1c1e21; border: 1px solid #e1e3e8; border-radius: 10px; overflow: hidden;
  display: flex; flex-direction: column; min-width: 200px; }
.card img { display: block; width: 100%; max-height: 160px; object-fit: cover; }
.card h3 { margin: 8px 10px 0; font-size: 15px; }
.card p { margin: 4px 10px 0; font-size: 14px; }
.card .buttons { display: flex; flex-direction: column; gap: 4px; padding: 8px 10px 10px; }
.card .button { display: block; text-align: center; border: 1px solid #0b5cad; color: #0b5cad; background: #fff;
  border-radius: 8px; padding: 6px 10px; font: inherit; font-size: 14px; cursor: pointer; text-decoration: none; }
.carousel { display: flex; gap: 8px; overflow-x: auto; max-width: 100%; scroll-snap-type: x mandatory; }
.carousel .card { flex: 0 0 78%; scroll-snap-align: start; }
.chips { list-style: none; margin: 0; padding: 6px 10px 0; display: flex; flex-wrap: wrap; gap: 6px; background: #fff; }
.chips:empty { display: none; }
.chip { display: inline-flex; align-items: center; gap: 6px; padding: 4px 6px 4px 8px; border: 1px solid #c4c8d0;
  border-radius: 16px; font-size: 13px; max-width: 100%; }
.chip .name { overflow: hidden; text-overflow: ellipsis; white-space: nowrap; max-width: 160px; }
.chip.failed { border-color: #b3261e; color: #b3261e; }
.chip .remove { border: 0; background: none; padding: 0; cursor: pointer; color: inherit; display: flex; }
.chip .remove .icon { width: 14px; height: 14px; }
.chip .status-line:empty { display: none; }
form .attach { background: none; color: #5c6370; padding: 0 4px; display: flex; align-items: center; }
.dropping { outline: 3px dashed #0b5cad; outline-offset: -6px; }
.lightbox { position: absolute; inset: 0; background: rgba(0,0,0,.85); display: flex; align-items: center;
  justify-content: center; z-index: 2; }
.lightbox[hidden] { display: none; }
.lightbox img { max-width: 95%; max-height: 90%; }
.lightbox .close-lightbox { position: absolute; top: 8px; right: 8px; background: none; border: 0; color: #fff;
  cursor: pointer; }
@media (max-width: 480px) {
  .embed .panel { inset: 0; width: auto; height: auto; border-radius: 0; }
  .embed .panel:not([hidden]) ~ .launcher { display: none; }
}
@media (prefers-reduced-motion: no-preference) { .log { scroll-behavior: smooth; } }
`;
