import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { choiceOption, commandArgs, intOption, numberOption, parseCommand, UsageError } from './args.js';
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

  it('takes --name=value as --name value', () => {
    assert.deepEqual(
      { ...commandArgs(['--config=a.yaml', '--port', '1'], options, 'u') },
      { config: 'a.yaml', port: '1' },
    );
  });

  it('counts positional words: too few and too many are usage errors', () => {
    const spec = { options: {}, usage: 'u', positionals: [1, 2] } as const;
    assert.deepEqual(parseCommand(['check', 'f.yaml'], spec)?.positionals, ['check', 'f.yaml']);
    assert.throws(() => parseCommand([], spec), /missing arguments/);
    assert.throws(() => parseCommand(['a', 'b', 'c'], spec), /unexpected argument 'c'/);
    assert.throws(() => commandArgs(['stray'], options, 'u'), UsageError);
  });

  it('checks choices and number ranges', () => {
    assert.equal(choiceOption('memory', 'store', ['sqlite', 'memory'], 'u'), 'memory');
    assert.throws(
      () => choiceOption('disk', 'store', ['sqlite', 'memory'], 'u'),
      /--store must be one of sqlite, memory/,
    );
    assert.equal(numberOption('-2.5', 'skew', -10, 10, 'u'), -2.5);
    assert.throws(() => numberOption('', 'skew', -10, 10, 'u'), UsageError);
    assert.throws(() => numberOption('11', 'skew', -10, 10, 'u'), /from -10 to 10/);
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
