/** Opt-in desktop notifications and a short chime for new waiting conversations. */

const OPT_IN_KEY = 'switchboard.console.notify';

export function notificationsWanted(): boolean {
  return localStorage.getItem(OPT_IN_KEY) === 'on';
}

export async function setNotificationsWanted(on: boolean): Promise<boolean> {
  if (on && 'Notification' in window && Notification.permission !== 'granted') {
    const answer = await Notification.requestPermission();
    if (answer !== 'granted') on = false;
  }
  localStorage.setItem(OPT_IN_KEY, on ? 'on' : 'off');
  return on;
}

let audio: AudioContext | undefined;

/** Two short tones: made with WebAudio, so the console ships no sound file. */
function chime(): void {
  audio ??= new AudioContext();
  const now = audio.currentTime;
  for (const [i, frequency] of [880, 1320].entries()) {
    const osc = audio.createOscillator();
    const gain = audio.createGain();
    osc.frequency.value = frequency;
    gain.gain.setValueAtTime(0.15, now + i * 0.15);
    gain.gain.exponentialRampToValueAtTime(0.001, now + i * 0.15 + 0.14);
    osc.connect(gain).connect(audio.destination);
    osc.start(now + i * 0.15);
    osc.stop(now + i * 0.15 + 0.15);
  }
}

export function announceWaiting(title: string, body: string): void {
  if (!notificationsWanted()) return;
  try {
    chime();
  } catch {
    // No audio device: the notification alone will do.
  }
  if ('Notification' in window && Notification.permission === 'granted' && document.hidden) {
    new Notification(title, { body, tag: 'switchboard-waiting' });
  }
}
