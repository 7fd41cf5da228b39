// The starbook extension: starts `starbook lsp` for .star files and talks
// to it over stdio with vscode-languageclient. Everything else (checks,
// completion, hover, definition, formatting) is the server's.
const vscode = require("vscode");
const { LanguageClient } = require("vscode-languageclient/node");

let client;

// start runs the server the settings name (starbook.path, starbook.env).
async function start() {
  const config = vscode.workspace.getConfiguration("starbook");
  const command = config.get("path") || "starbook";
  const env = Object.assign({}, process.env, config.get("env") || {});
  client = new LanguageClient(
    "starbook",
    "starbook",
    { command, args: ["lsp"], options: { env } },
    { documentSelector: [{ scheme: "file", language: "starbook" }] },
  );
  try {
    await client.start();
  } catch (err) {
    vscode.window.showErrorMessage(
      `starbook: could not start "${command} lsp" (set starbook.path): ${err.message || err}`,
    );
  }
}

async function stop() {
  if (client) {
    const c = client;
    client = undefined;
    await c.stop();
  }
}

async function activate(context) {
  context.subscriptions.push(
    vscode.workspace.onDidChangeConfiguration(async (e) => {
      if (e.affectsConfiguration("starbook")) {
        await stop();
        await start();
      }
    }),
  );
  await start();
}

async function deactivate() {
  await stop();
}

module.exports = { activate, deactivate };
