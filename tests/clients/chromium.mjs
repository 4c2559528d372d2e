// Debian's Chromium for the browser checks: headless, with the flags a machine without
// internet needs (no background connections, no component updates), in a fresh profile.

import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium } from 'playwright-core';

export const executable = process.env.CHROMIUM || '/usr/bin/chromium';

const ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

/**
 * Launches Chromium in a profile of its own; `options` go to playwright's
 * `launchPersistentContext` (`timeout` also becomes the context's default timeout).
 * `close()` shuts it down, waiting at most 5 s, and removes the profile.
 */
export async function launch(options) {
  const profile = mkdtempSync(join(tmpdir(), 'quill-chromium-profile-'));
  const removeProfile = () => rmSync(profile, { recursive: true, force: true });
  let context;
  try {
    context = await chromium.launchPersistentContext(profile, {
      executablePath: executable,
      headless: true,
      args: ARGS,
      ...options,
    });
  } catch (error) {
    removeProfile();
    throw error;
  }
  if (options.timeout) context.setDefaultTimeout(options.timeout);
  const close = async () => {
    let timer;
    await Promise.race([context.close(), new Promise((r) => (timer = setTimeout(r, 5_000)))]).catch(() => {});
    clearTimeout(timer);
    removeProfile();
  };
  return { context, close };
}
