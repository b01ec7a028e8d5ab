import { PGlite } from '@electric-sql/pglite';
import fs from 'node:fs';
const rss = () => Math.round(process.memoryUsage().rss/1048576);
const hwm = () => Math.round(Number(/VmHWM:\s+(\d+)/.exec(fs.readFileSync('/proc/self/status','utf8'))[1])/1024);
const extra = ['-c','shared_buffers=16MB','-c','work_mem=2MB','-c','wal_buffers=1MB','-c','temp_buffers=2MB','-c','maintenance_work_mem=16MB','-c','max_connections=4'];
const startParams = [...PGlite.defaultStartParams, ...extra];
const [,, mode, dir, file] = process.argv;
const t = performance.now();
if (mode === 'make') {
  const db = await PGlite.create({ startParams });
  console.log('initdb mem', Math.round(performance.now()-t), 'ms rss', rss(), 'hwm', hwm());
  const blob = await db.dumpDataDir('gzip');
  fs.writeFileSync(file, Buffer.from(await blob.arrayBuffer()));
  console.log('size', fs.statSync(file).size);
  await db.close();
} else {
  const buf = fs.readFileSync(file);
  const db = await PGlite.create({ dataDir: dir, startParams, loadDataDir: new Blob([buf]) });
  console.log('load', Math.round(performance.now()-t), 'ms rss', rss(), 'hwm', hwm());
  await db.query('create table x(a int)');
  await db.close();
  const t2 = performance.now();
  const db2 = await PGlite.create({ dataDir: dir, startParams });
  console.log('reopen', Math.round(performance.now()-t2), 'ms', (await db2.query('select count(*) from x')).rows);
  await db2.close();
}
