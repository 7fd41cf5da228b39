// The starbook extension: starts `starbook lsp` for .star files and talks
// to it over stdio with vscode-languageclient. Everything else (checks,
// completion, hover, definition, formatting) is the server's.
const vscode = require("vscode");
const { LanguageClient } = require("vscode-languageclient/node");

let client;

async function activate(context) {
  const config = vscode.workspace.getConfiguration("starbook");
  const command = config.get("path") || "starbook";
  const env = Object.assign({}, process.env, config.get("env") || {});
  client = new LanguageClient(
    "starbook",
    "starbook",
    { command, args: ["lsp"], options: { env } },
    { documentSelector: [{ scheme: "file", language: "starbook" }] },
  );
  context.subscriptions.push(
    vscode.workspace.onDidChangeConfiguration(async (e) => {
      if (e.affectsConfiguration("starbook") && client) {
        await client.stop();
        await activate(context);
      }
    }),
  );
  try {
    await client.start();
  } catch (err) {
    vscode.window.showErrorMessage(
      `starbook: could not start "${command} lsp" (set starbook.path): ${err.message || err}`,
    );
  }
}

async function deactivate() {
  if (client) {
    await client.stop();
  }
}

module.exports = { activate, deactivate };
