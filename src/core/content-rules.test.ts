import { describe, expect, it } from "vitest";
import {
  type ContentFile,
  type ContentFinding,
  contentFindingTier,
  findContentProblems,
  hiddenCharacter,
  utf8Bytes,
} from "./content-rules.ts";
import { parsePatch } from "./unified-diff.ts";

const LIMITS = { maxLineBytes: 1_000, maxFileBytes: 4_096 };

function added(path: string, lines: string[], extra: Partial<ContentFile> = {}): ContentFile {
  return {
    path,
    status: "modified",
    additions: lines.length,
    deletions: 0,
    patch: [`@@ -5,1 +5,${lines.length + 1} @@`, " context", ...lines.map((l) => `+${l}`)].join(
      "\n",
    ),
    ...extra,
  };
}

const kinds = (files: ContentFile[]) => findContentProblems(files, LIMITS).map((f) => f.kind);

describe("hidden characters on added lines", () => {
  it.each([
    // Trojan Source: bidirectional embeddings, overrides and isolates.
    ["if (isAdmin) { /*\u202E } \u2066if (isAdmin)\u2069 \u2066 begin admins only */", "U+202E"],
    ["const s = '\u202A';", "U+202A"],
    ["const s = '\u202B';", "U+202B"],
    ["const s = '\u202C';", "U+202C"],
    ["const s = '\u202D';", "U+202D"],
    ["return '\u2066' + x;", "U+2066"],
    ["return '\u2067' + x;", "U+2067"],
    ["return '\u2068' + x;", "U+2068"],
    ["return x + '\u2069';", "U+2069"],
    ["const a = 1; // \u200F", "U+200F"],
    ["const a\u061C = 1;", "U+061C"],
    // Invisible characters: zero-width, fillers, joiners where they join nothing.
    ["const admin\u200B = true;", "U+200B"],
    ["if (user.role === 'adm\u200Din') {", "U+200D"],
    ["const x = a\u200Cb;", "U+200C"],
    ["const \u3164 = 1;", "U+3164"],
    ["const x\u2060y = 1;", "U+2060"],
    ["const x\u2062y = 1;", "U+2062"],
    ["let x = 'a\u00ADb';", "U+00AD"],
    ["middle of a line \uFEFF", "U+FEFF"],
    ["text\u2028more", "U+2028"],
    // Tag characters smuggle text an agent or a model reads and a person does not see.
    ["// ok \u{E0049}\u{E0067}\u{E006E}\u{E006F}\u{E0072}\u{E0065}", "U+E0049"],
    ["const s = 'x\u{E0101}';", "U+E0101"],
    // Control characters: escape sequences repaint a terminal, a lone CR hides what precedes it.
    ["echo \u001b[2Kok", "U+001B"],
    ["safe();\rmalicious();", "U+000D"],
    ["x\u0000y", "U+0000"],
    ["x\u0085y", "U+0085"],
  ])("%j hides %s", (line, codePoint) => {
    expect(hiddenCharacter(line)?.name.split(" ")[0]).toBe(codePoint);
  });

  it.each([
    ["const a = 1;"],
    ["\tindented with tabs"],
    ["const greeting = 'héllo wörld';"],
    ["const name = '日本語';"],
    ["const ar = 'مرحبا بالعالم';"],
    // Emoji sequences with ZWJ, variation selectors, skin tones, and a flag made of tags.
    ["const dev = '👩‍💻';"],
    ["const family = '👨‍👩‍👧‍👦';"],
    ["const heart = '❤️';"],
    ["const wave = '👋🏽';"],
    ["const scotland = '\u{1F3F4}\u{E0067}\u{E0062}\u{E0073}\u{E0063}\u{E0074}\u{E007F}';"],
    // ZWNJ and ZWJ inside words of joining scripts (Persian, Hindi).
    ["const fa = 'می\u200Cخواهم';"],
    ["const hi = 'क्\u200Dष';"],
    // CRLF files: the CR at the very end is the line ending.
    ["const a = 1;\r"],
  ])("%j is visible text", (line) => {
    expect(hiddenCharacter(line)).toBeUndefined();
  });

  it("allows a byte-order mark only at the start of the file", () => {
    expect(hiddenCharacter("\uFEFFimport x from 'y';", true)).toBeUndefined();
    expect(hiddenCharacter("\uFEFFimport x from 'y';", false)?.name).toBe(
      "U+FEFF ZERO WIDTH NO-BREAK SPACE",
    );
    const bom: ContentFile = {
      path: "src/a.ts",
      status: "added",
      additions: 1,
      deletions: 0,
      patch: "@@ -0,0 +1,1 @@\n+\uFEFFexport {};",
    };
    expect(kinds([bom])).toEqual([]);
  });

  it("checks prose too: a README can hide instructions as well as code can", () => {
    expect(kinds([added("README.md", ["Run the tests\u200B."])])).toEqual(["hidden"]);
  });

  it("ignores removed and context lines (removing a hidden character is the fix)", () => {
    const file: ContentFile = {
      path: "src/a.ts",
      status: "modified",
      additions: 1,
      deletions: 1,
      patch: "@@ -1,2 +1,2 @@\n const \u200B = 0;\n-const a\u202E = 1;\n+const a = 1;",
    };
    expect(kinds([file])).toEqual([]);
  });

  it("names the file, the character and the line", () => {
    expect(findContentProblems([added("src/a.ts", ["ok", "x\u202Ey"])], LIMITS)).toEqual<
      ContentFinding[]
    >([
      {
        kind: "hidden",
        path: "src/a.ts",
        codePoint: 0x202e,
        name: "U+202E RIGHT-TO-LEFT OVERRIDE",
        line: 7,
      },
    ]);
  });
});

describe("modes, binaries and files without a diff", () => {
  it.each<[string, ContentFile, ContentFinding["kind"][]]>([
    [
      "a symlink Conveyor wrote",
      added("docs/link", ["../secrets"], { mode: "120000" }),
      ["symlink"],
    ],
    [
      "an executable Conveyor wrote",
      added("scripts/x.sh", ["echo hi"], { mode: "100755" }),
      ["executable"],
    ],
    ["safe twin: a regular file", added("scripts/x.sh", ["echo hi"], { mode: "100644" }), []],
    ["safe twin: a mode Conveyor does not know", added("src/a.ts", ["x"]), []],
    [
      "safe twin: a deleted executable",
      { path: "scripts/old.sh", status: "removed", additions: 0, deletions: 3, mode: "100755" },
      [],
    ],
    [
      "GitHub's `changed` status (a type change)",
      { path: "config", status: "changed", additions: 0, deletions: 0, patch: "" },
      ["type_changed"],
    ],
    [
      "a binary file",
      { path: "logo.png", status: "added", additions: 0, deletions: 0, binary: true },
      ["binary"],
    ],
    [
      "a modified file GitHub shows no diff for",
      { path: "src/huge.ts", status: "modified", additions: 5_000, deletions: 0 },
      ["no_diff"],
    ],
    [
      "safe twin: a pure rename without a diff",
      { path: "src/b.ts", status: "renamed", additions: 0, deletions: 0 },
      [],
    ],
  ])("%s", (_name, file, expected) => {
    expect(kinds([file])).toEqual(expected);
    for (const finding of findContentProblems([file], LIMITS)) {
      expect(contentFindingTier(finding)).toBe(3);
    }
  });
});

describe("added bytes for tier 1", () => {
  it.each<[string, ContentFile[], ContentFinding["kind"][]]>([
    [
      "one minified line",
      [added("dist/app.min.js", [`!function(){${"var a=1;".repeat(600)}}();`])],
      ["long_line", "file_bytes"],
    ],
    ["a line just over the cap", [added("src/a.ts", ["x".repeat(1_001)])], ["long_line"]],
    ["safe twin: a line at the cap", [added("src/a.ts", ["x".repeat(1_000)])], []],
    ["multi-byte characters count as bytes", [added("src/a.ts", ["é".repeat(501)])], ["long_line"]],
    [
      "many lines under the line cap but over the file cap",
      [
        added(
          "src/a.ts",
          Array.from({ length: 10 }, () => "y".repeat(500)),
        ),
      ],
      ["file_bytes"],
    ],
    [
      "safe twin: an ordinary small edit",
      [added("src/a.ts", ["const a = 1;", "const b = 2;"])],
      [],
    ],
  ])("%s", (_name, files, expected) => {
    const found = findContentProblems(files, LIMITS);
    expect(found.map((f) => f.kind)).toEqual(expected);
    for (const finding of found) expect(contentFindingTier(finding)).toBe(2);
  });

  it.each([
    ["", 0],
    ["abc", 3],
    ["é", 2],
    ["€", 3],
    ["😀", 4],
    ["\uD800", 3],
  ])("utf8Bytes(%j) = %i", (text, bytes) => {
    expect(utf8Bytes(text)).toBe(bytes);
  });

  it("stays fast on a huge line of non-ASCII text", () => {
    const line = "ä\u200D".repeat(200_000);
    const started = performance.now();
    const found = findContentProblems([added("src/a.ts", [line])], LIMITS);
    expect(found.map((f) => f.kind)).toEqual(["long_line", "hidden", "file_bytes"]);
    expect(performance.now() - started).toBeLessThan(2_000);
  });
});

describe("parsePatch", () => {
  it("numbers added and context lines in the new file and keeps removed ones", () => {
    const hunks = parsePatch(
      "@@ -10,3 +10,4 @@ function x() {\n a\n-b\n+B\n+C\n c\n\\ No newline at end of file\n@@ -40 +41 @@\n-z\n+Z",
    );
    expect(hunks.map((h) => [h.oldStart, h.oldCount, h.newStart, h.newCount])).toEqual([
      [10, 3, 10, 4],
      [40, 1, 41, 1],
    ]);
    expect(hunks[0]?.lines).toEqual([
      { kind: "context", text: "a", newLine: 10 },
      { kind: "remove", text: "b" },
      { kind: "add", text: "B", newLine: 11 },
      { kind: "add", text: "C", newLine: 12 },
      { kind: "context", text: "c", newLine: 13 },
    ]);
    expect(hunks[1]?.lines.map((l) => [l.kind, l.text, l.newLine])).toEqual([
      ["remove", "z", undefined],
      ["add", "Z", 41],
    ]);
  });

  it("keeps added lines of a malformed patch, without numbers", () => {
    expect(parsePatch("+first\n@@ broken @@\n+second")).toEqual([
      {
        oldStart: 0,
        oldCount: 0,
        newStart: 0,
        newCount: 0,
        lines: [{ kind: "add", text: "first", newLine: undefined }],
      },
      {
        oldStart: 0,
        oldCount: 0,
        newStart: 0,
        newCount: 0,
        lines: [{ kind: "add", text: "second", newLine: undefined }],
      },
    ]);
  });
});
