/** Elements that never have content or an end tag. */
const VOID = new Set([
  "area",
  "base",
  "br",
  "col",
  "embed",
  "hr",
  "img",
  "input",
  "link",
  "meta",
  "source",
  "track",
  "wbr",
]);
/** Elements whose content is text up to their end tag. */
const RAW_TEXT = new Set(["script", "style", "textarea", "title"]);

/** One start or end tag with well-formed attributes (quoted, unquoted or bare). */
const TAG =
  /^<(\/?)([a-zA-Z][a-zA-Z0-9-]*)((?:\s+[^\s"'>/=]+(?:\s*=\s*(?:"[^"]*"|'[^']*'|[^\s"'=<>`]+))?)*)\s*(\/?)>/;
const ATTRIBUTE_NAME = /\s+([^\s"'>/=]+)(?:\s*=\s*(?:"[^"]*"|'[^']*'|[^\s"'=<>`]+))?/g;

/**
 * What is wrong with an HTML document, strictly: exactly one `<!DOCTYPE html>` and at the start;
 * one `html`, `head`, `body` and non-empty `title`; every tag well-formed, no attribute twice, and
 * every non-void element closed explicitly and in order. Empty when the page is fine. A small
 * checker (no HTML parser dependency) for pages the app itself serves.
 */
export function htmlProblems(html: string): string[] {
  const problems: string[] = [];
  const doctypes = html.match(/<!DOCTYPE/gi)?.length ?? 0;
  if (doctypes !== 1) problems.push(`expected one <!DOCTYPE html>, found ${doctypes}`);
  if (!/^<!DOCTYPE html>/i.test(html))
    problems.push("the document does not start with <!DOCTYPE html>");

  const counts = new Map<string, number>();
  const open: string[] = [];
  let title = "";
  let i = html.search(/<html[\s>]/i);
  if (i < 0) return [...problems, "no <html> element"];
  while (i < html.length) {
    const lt = html.indexOf("<", i);
    if (lt < 0) break;
    if (html.startsWith("<!--", lt)) {
      const end = html.indexOf("-->", lt + 4);
      if (end < 0) return [...problems, `unclosed comment at offset ${lt}`];
      i = end + 3;
      continue;
    }
    const match = TAG.exec(html.slice(lt));
    if (!match) {
      // A `<` that starts no tag is text only if nothing tag-like follows it.
      if (/^<[/!a-zA-Z]/.test(html.slice(lt, lt + 2))) {
        problems.push(`malformed tag at offset ${lt}: ${html.slice(lt, lt + 40)}`);
      }
      i = lt + 1;
      continue;
    }
    const [whole, slash, rawName = "", attributes = "", selfClosing] = match;
    const name = rawName.toLowerCase();
    i = lt + whole.length;
    if (slash) {
      if (VOID.has(name)) problems.push(`end tag </${name}> of a void element`);
      const expected = open.pop();
      if (expected !== name) {
        problems.push(`</${name}> at offset ${lt} closes <${expected ?? "nothing"}>`);
        return problems;
      }
      continue;
    }
    counts.set(name, (counts.get(name) ?? 0) + 1);
    const names = [...attributes.matchAll(ATTRIBUTE_NAME)].map((a) => a[1]?.toLowerCase());
    const twice = names.filter((n, k) => names.indexOf(n) !== k);
    if (twice.length) problems.push(`<${name}> at offset ${lt} repeats ${twice.join(", ")}`);
    if (VOID.has(name) || selfClosing) continue;
    if (RAW_TEXT.has(name)) {
      const end = html.toLowerCase().indexOf(`</${name}`, i);
      if (end < 0) return [...problems, `<${name}> at offset ${lt} is never closed`];
      if (name === "title") title = html.slice(i, end).trim();
      i = end;
      open.push(name);
      continue;
    }
    open.push(name);
  }
  if (open.length) problems.push(`never closed: ${open.map((n) => `<${n}>`).join(" ")}`);
  for (const name of ["html", "head", "body", "title"]) {
    const n = counts.get(name) ?? 0;
    if (n !== 1) problems.push(`expected one <${name}>, found ${n}`);
  }
  if (!title) problems.push("the <title> is empty");
  if (html.slice(i).trim()) problems.push("text after </html>");
  return problems;
}
