import { Hono } from 'hono';
import QRCode from 'qrcode';
import { type AdminGuardOptions, requireAdmin } from '../../../src/http/admin-auth.ts';
import { ApiError } from '../../../src/http/errors.ts';
import type { WebSession } from './session.ts';

export const ADMIN_STATUS_PATH = '/api/admin/whatsapp/web';
export const ADMIN_QR_PATH = '/api/admin/whatsapp/web/qr.svg';

/**
 * Operator routes for the linked WhatsApp Web session, behind ADMIN_TOKEN: its state (and the
 * pairing code while it waits to be scanned), and the QR code as an SVG image to scan.
 */
export function webAdminRoutes(session: WebSession, admin: AdminGuardOptions): Hono {
  const app = new Hono();
  const guard = requireAdmin(admin);
  app.get(ADMIN_STATUS_PATH, guard, (c) => {
    const { state, since, qr } = session.status;
    return c.json({ state, since, ...(qr ? { qr, qr_svg: ADMIN_QR_PATH } : {}) });
  });
  app.get(ADMIN_QR_PATH, guard, async (c) => {
    const { state, qr } = session.status;
    if (!qr) throw new ApiError(404, 'no_qr_code', `there is no QR code to scan: WhatsApp Web is ${state}`);
    const svg = await QRCode.toString(qr, { type: 'svg', margin: 2 });
    return c.body(svg, 200, { 'Content-Type': 'image/svg+xml', 'Cache-Control': 'no-store' });
  });
  return app;
}
