import { type DiffLine, parsePatch } from "./unified-diff.ts";

/**
 * What the added bytes of a change may not hide: characters a reviewer cannot see (bidirectional
 * controls that reorder code on screen, "Trojan Source"; zero-width and other invisible
 * characters; control characters), content that cannot be inspected at all (binary files, files
 * GitHub shows no diff for), symlinks and executable files. Each of those is tier 3. Lines or files
 * with many added bytes (one minified line is not "one line") are not tier 1.
 */

/** The file modes Conveyor writes (git's: regular, executable, symlink). */
export type FileMode = "100644" | "100755" | "120000";

/** The shape of a changed file this module needs (a subset of the policy's `PrFile`). */
export interface ContentFile {
  path: string;
  status: string;
  additions: number;
  deletions: number;
  patch?: string | undefined;
  binary?: boolean | undefined;
  /** The mode Conveyor wrote the file with (from its change set); undefined when not known. */
  mode?: FileMode | undefined;
}

export interface ContentLimits {
  /** Most UTF-8 bytes of one added line in a tier-1 change. */
  maxLineBytes: number;
  /** Most UTF-8 bytes added to one file (its added lines, with their line ends) in a tier-1 change. */
  maxFileBytes: number;
}

export type ContentFinding =
  /** Tier 3: a character a reviewer cannot see, on an added line. */
  | { kind: "hidden"; path: string; codePoint: number; name: string; line?: number | undefined }
  | { kind: "binary"; path: string }
  | { kind: "no_diff"; path: string }
  | { kind: "symlink"; path: string }
  | { kind: "executable"; path: string }
  /** GitHub's `changed` status: the file's type changed (a file became a symlink or back). */
  | { kind: "type_changed"; path: string }
  /** Tier 2: an added line over `maxLineBytes`. */
  | { kind: "long_line"; path: string; bytes: number; limit: number; line?: number | undefined }
  /** Tier 2: more than `maxFileBytes` added to one file. */
  | { kind: "file_bytes"; path: string; bytes: number; limit: number };

/** The tier a finding forces: 3 (never auto-merged) or 2 (not tier 1). */
export function contentFindingTier(finding: ContentFinding): 2 | 3 {
  return finding.kind === "long_line" || finding.kind === "file_bytes" ? 2 : 3;
}

const NAMES: Record<number, string> = {
  1564: "ARABIC LETTER MARK",
  8203: "ZERO WIDTH SPACE",
  8204: "ZERO WIDTH NON-JOINER",
  8205: "ZERO WIDTH JOINER",
  8206: "LEFT-TO-RIGHT MARK",
  8207: "RIGHT-TO-LEFT MARK",
  8232: "LINE SEPARATOR",
  8233: "PARAGRAPH SEPARATOR",
  8234: "LEFT-TO-RIGHT EMBEDDING",
  8235: "RIGHT-TO-LEFT EMBEDDING",
  8236: "POP DIRECTIONAL FORMATTING",
  8237: "LEFT-TO-RIGHT OVERRIDE",
  8238: "RIGHT-TO-LEFT OVERRIDE",
  8288: "WORD JOINER",
  8294: "LEFT-TO-RIGHT ISOLATE",
  8295: "RIGHT-TO-LEFT ISOLATE",
  8296: "FIRST STRONG ISOLATE",
  8297: "POP DIRECTIONAL ISOLATE",
  173: "SOFT HYPHEN",
  12644: "HANGUL FILLER",
  65279: "ZERO WIDTH NO-BREAK SPACE",
};

/** Whether a code point is invisible or reorders text: never fine on an added line by itself. */
function isHidden(cp: number): boolean {
  return (
    // C0 controls except tab, and DEL; C1 controls
    (cp < 0x20 && cp !== 0x09) ||
    (cp >= 0x7f && cp <= 0x9f) ||
    cp === 0x00ad ||
    cp === 0x034f ||
    cp === 0x061c ||
    cp === 0x115f ||
    cp === 0x1160 ||
    cp === 0x17b4 ||
    cp === 0x17b5 ||
    cp === 0x180e ||
    (cp >= 0x200b && cp <= 0x200f) ||
    (cp >= 0x2028 && cp <= 0x202e) ||
    (cp >= 0x2060 && cp <= 0x2064) ||
    (cp >= 0x2066 && cp <= 0x206f) ||
    cp === 0x3164 ||
    cp === 0xfeff ||
    cp === 0xffa0 ||
    (cp >= 0xfff9 && cp <= 0xfffb) ||
    (cp >= 0xe0000 && cp <= 0xe007f) ||
    (cp >= 0xe0100 && cp <= 0xe01ef)
  );
}

const PICTOGRAPHIC = /\p{Extended_Pictographic}/u;
const LETTER = /\p{L}|\p{M}/u;

/** A letter of a script that joins (Arabic, Indic, …): ZWJ and ZWNJ shape it. Not Latin. */
function isJoiningLetter(char: string | undefined): boolean {
  return char !== undefined && char.codePointAt(0)! > 0x24f && LETTER.test(char);
}

/**
 * The uses of invisible characters that are plain text and show as such: ZWJ inside an emoji
 * sequence (👩‍💻) or between letters of a joining script, ZWNJ between such letters, tag characters
 * in a flag sequence (🏴 + tags + cancel tag), a byte-order mark at the very start of a file, and a
 * carriage return at the end of a line (CRLF files).
 */
function isBenign(chars: readonly string[], i: number, firstLineOfFile: boolean): boolean {
  const cp = chars[i]!.codePointAt(0)!;
  const before = chars[i - 1];
  const after = chars[i + 1];
  if (cp === 0x0d) return i === chars.length - 1;
  if (cp === 0xfeff) return i === 0 && firstLineOfFile;
  if (cp === 0x200d) {
    const emojiBefore =
      before !== undefined &&
      (PICTOGRAPHIC.test(before) || before === "\uFE0F" || /[\u{1F3FB}-\u{1F3FF}]/u.test(before));
    if (emojiBefore && after !== undefined && PICTOGRAPHIC.test(after)) return true;
    return isJoiningLetter(before) && isJoiningLetter(after);
  }
  if (cp === 0x200c) return isJoiningLetter(before) && isJoiningLetter(after);
  if (cp >= 0xe0020 && cp <= 0xe007f) {
    // Walk back over the tag run: it must start right after a waving black flag.
    let j = i;
    while (j > 0 && isTag(chars[j - 1]!)) j--;
    if (chars[j - 1] !== "\u{1F3F4}") return false;
    let k = i;
    while (k < chars.length && isTag(chars[k]!) && chars[k] !== "\u{E007F}") k++;
    return chars[k] === "\u{E007F}";
  }
  return false;
}

function isTag(char: string): boolean {
  const cp = char.codePointAt(0)!;
  return cp >= 0xe0020 && cp <= 0xe007f;
}

function hex(cp: number): string {
  return `U+${cp.toString(16).toUpperCase().padStart(4, "0")}`;
}

/** The first hidden character of an added line, or undefined. Linear in the line. */
export function hiddenCharacter(
  text: string,
  firstLineOfFile = false,
): { codePoint: number; name: string } | undefined {
  // Fast path: printable ASCII and tabs only.
  if (/^[\t\x20-\x7e]*$/.test(text)) return undefined;
  const chars = [...text];
  for (let i = 0; i < chars.length; i++) {
    const cp = chars[i]!.codePointAt(0)!;
    if (!isHidden(cp) || isBenign(chars, i, firstLineOfFile)) continue;
    const name = NAMES[cp];
    return { codePoint: cp, name: name ? `${hex(cp)} ${name}` : hex(cp) };
  }
  return undefined;
}

/** UTF-8 length of a string, without allocating. */
export function utf8Bytes(text: string): number {
  let bytes = 0;
  for (let i = 0; i < text.length; i++) {
    const unit = text.charCodeAt(i);
    if (unit < 0x80) bytes += 1;
    else if (unit < 0x800) bytes += 2;
    else if (unit >= 0xd800 && unit <= 0xdbff && i + 1 < text.length) {
      const next = text.charCodeAt(i + 1);
      if (next >= 0xdc00 && next <= 0xdfff) {
        bytes += 4;
        i++;
      } else bytes += 3;
    } else bytes += 3;
  }
  return bytes;
}

/**
 * Every content finding of a change, in file order. Hidden characters are reported once per file
 * (the first), as are long lines.
 */
export function findContentProblems(
  files: readonly ContentFile[],
  limits: ContentLimits,
): ContentFinding[] {
  const found: ContentFinding[] = [];
  for (const file of files) {
    if (file.status === "changed") found.push({ kind: "type_changed", path: file.path });
    if (file.status !== "removed") {
      if (file.mode === "120000") found.push({ kind: "symlink", path: file.path });
      if (file.mode === "100755") found.push({ kind: "executable", path: file.path });
    }
    if (file.binary) {
      found.push({ kind: "binary", path: file.path });
      continue;
    }
    if (file.patch === undefined) {
      // GitHub omits the patch for binary files and huge diffs. A deleted file adds nothing, and
      // a rename (or an unchanged file) with identical content adds nothing unseen; anything else
      // fails closed.
      const addsNothing =
        file.status === "removed" ||
        ((file.status === "renamed" || file.status === "unchanged") &&
          file.additions === 0 &&
          file.deletions === 0);
      if (!addsNothing) found.push({ kind: "no_diff", path: file.path });
      continue;
    }
    let hidden = false;
    let longLine = false;
    let addedBytes = 0;
    for (const hunk of parsePatch(file.patch)) {
      for (const line of hunk.lines) {
        if (line.kind !== "add") continue;
        const bytes = utf8Bytes(line.text);
        addedBytes += bytes + 1;
        if (!longLine && bytes > limits.maxLineBytes) {
          longLine = true;
          found.push({
            kind: "long_line",
            path: file.path,
            bytes,
            limit: limits.maxLineBytes,
            line: line.newLine,
          });
        }
        if (!hidden) {
          const char = hiddenCharacter(line.text, isFirstLine(line));
          if (char) {
            hidden = true;
            found.push({ kind: "hidden", path: file.path, ...char, line: line.newLine });
          }
        }
      }
    }
    if (addedBytes > limits.maxFileBytes) {
      found.push({
        kind: "file_bytes",
        path: file.path,
        bytes: addedBytes,
        limit: limits.maxFileBytes,
      });
    }
  }
  return found;
}

function isFirstLine(line: DiffLine): boolean {
  return line.newLine === 1;
}
