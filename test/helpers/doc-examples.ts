/**
 * The examples of a Markdown page, for tests that send them to a real server: fenced blocks with
 * the HTML comment right above each, and HTTP requests paired with the answers shown for them.
 *
 * - A `http` block starting with a request line (`GET /path HTTP/1.1`) is a request. It must sit
 *   under `<!-- exchange <name> -->`. Its body is the text after its first blank line; a request
 *   with neither a body nor `Content-Length` takes the next block as its body if that block is
 *   marked `<!-- change-set -->` (sent byte for byte).
 * - The next `http` block starting with `HTTP/1.1 <status>` is its answer: the status, the headers
 *   shown, and a JSON body if one is shown.
 */

export interface FencedBlock {
  /** 0-based position among all fenced blocks of the page. */
  index: number;
  lang: string;
  /** The HTML comment right above the fence (blank lines skipped), without `<!--`/`-->`. */
  marker: string | undefined;
  /** 1-based line of the opening fence. */
  line: number;
  text: string;
}

export function fencedBlocks(markdown: string): FencedBlock[] {
  const lines = markdown.split(/\r?\n/);
  const blocks: FencedBlock[] = [];
  for (let i = 0; i < lines.length; i++) {
    const open = /^(`{3,}|~{3,})\s*(\S*)/.exec(lines[i]!);
    if (!open) continue;
    const fence = open[1]!;
    let end = i + 1;
    while (end < lines.length) {
      const t = lines[end]!.trim();
      if (t.length >= fence.length && t[0] === fence[0] && /^(`+|~+)$/.test(t)) break;
      end++;
    }
    let above = i - 1;
    while (above >= 0 && lines[above]!.trim() === "") above--;
    const marker = /^<!--\s*(.+?)\s*-->$/.exec(lines[above]?.trim() ?? "")?.[1];
    blocks.push({
      index: blocks.length,
      lang: open[2] ?? "",
      marker,
      line: i + 1,
      text: lines.slice(i + 1, end).join("\n"),
    });
    i = end;
  }
  return blocks;
}

export interface HttpMessage {
  /** The request line or the status line. */
  startLine: string;
  /** In the order shown, names as written. */
  headers: [string, string][];
  body: string | undefined;
}

export interface Exchange {
  name: string;
  request: HttpMessage;
  response: HttpMessage;
  /** The blocks this exchange is made of (request, body block if any, response). */
  blocks: FencedBlock[];
}

export function parseHttpMessage(text: string): HttpMessage {
  const lines = text.split("\n");
  const blank = lines.findIndex((line) => line.trim() === "");
  const head = blank === -1 ? lines : lines.slice(0, blank);
  const headers = head.slice(1).map((line): [string, string] => {
    const colon = line.indexOf(":");
    if (colon === -1) throw new Error(`not a header line: ${line}`);
    return [line.slice(0, colon).trim(), line.slice(colon + 1).trim()];
  });
  const body = blank === -1 ? undefined : lines.slice(blank + 1).join("\n");
  return { startLine: head[0]!, headers, body: body?.trim() === "" ? undefined : body };
}

const isRequest = (block: FencedBlock) =>
  block.lang === "http" && /^[A-Z]+ \S+ HTTP\/1\.1$/.test(block.text.split("\n")[0]!);
const isResponse = (block: FencedBlock) =>
  block.lang === "http" && /^HTTP\/1\.1 \d{3}\b/.test(block.text.split("\n")[0]!);

/** Every request of the page with the answer shown for it; a request without one throws. */
export function exchanges(blocks: FencedBlock[]): Exchange[] {
  const found: Exchange[] = [];
  for (let i = 0; i < blocks.length; i++) {
    const block = blocks[i]!;
    if (!isRequest(block)) continue;
    const name = /^exchange ([\w-]+)$/.exec(block.marker ?? "")?.[1];
    if (!name) {
      throw new Error(`line ${block.line}: a request needs <!-- exchange <name> --> above it`);
    }
    const request = parseHttpMessage(block.text);
    const parts = [block];
    const hasLength = request.headers.some(([n]) => n.toLowerCase() === "content-length");
    let next = i + 1;
    if (request.body === undefined && !hasLength && blocks[next]?.marker === "change-set") {
      request.body = blocks[next]!.text;
      parts.push(blocks[next]!);
      next++;
    }
    const answer = blocks[next];
    if (!answer || !isResponse(answer)) {
      throw new Error(`line ${block.line}: the request "${name}" is not followed by its answer`);
    }
    parts.push(answer);
    found.push({ name, request, response: parseHttpMessage(answer.text), blocks: parts });
    i = next;
  }
  return found;
}
