// The formats the webhook payload validator checks, as a module its cached standalone code can
// require (schema-cache.ts): ajv-formats' full set, with a looser "email". GitHub's own payloads
// carry App bot addresses such as `123+conveyor[bot]@users.noreply.github.com`, which ajv-formats'
// strict "email" rejects; the published schema's format is looser than its regex, so this checks
// the shape GitHub really sends.
const { fullFormats } = require("ajv-formats/dist/formats");

module.exports = { ...fullFormats, email: /^[^\s@]+@[^\s@]+\.[^\s@]+$/ };
