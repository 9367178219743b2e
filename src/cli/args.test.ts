import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { commandArgs, intOption, UsageError } from './args.js';
import { main } from './main.js';

describe('command arguments', () => {
  const options = {
    config: { type: 'string' },
    port: { type: 'string' },
    quiet: { type: 'boolean' },
  } as const;

  it('parses known options and requires the required ones', () => {
    assert.deepEqual(
      { ...commandArgs(['--config', 'a.yaml', '--quiet'], options, 'usage', ['config']) },
      {
        config: 'a.yaml',
        quiet: true,
      },
    );
    assert.throws(() => commandArgs(['--port', '1'], options, 'usage', ['config']), /--config is required/);
  });

  it('refuses unknown options with a UsageError carrying the usage', () => {
    assert.throws(
      () => commandArgs(['--bogus'], options, 'the usage'),
      (e: unknown) => e instanceof UsageError && e.usage === 'the usage',
    );
  });

  it('checks whole-number ranges', () => {
    assert.equal(intOption(undefined, 'port', 0, 65535, 'u'), undefined);
    assert.equal(intOption('8080', 'port', 0, 65535, 'u'), 8080);
    assert.throws(
      () => intOption('70000', 'port', 0, 65535, 'u'),
      /--port must be a whole number from 0 to 65535/,
    );
    assert.throws(() => intOption('1.5', 'port', 0, 65535, 'u'), UsageError);
  });

  it('meridian exits 2 on bad arguments and on an unknown command', async () => {
    const write = process.stderr.write;
    process.stderr.write = () => true;
    try {
      assert.equal(await main(['dns', '--port', 'x', '--config', 'c.yaml']), 2);
      assert.equal(await main(['region', '--config', 'c.yaml']), 2);
      assert.equal(await main(['no-such-command']), 2);
    } finally {
      process.stderr.write = write;
    }
  });
});
