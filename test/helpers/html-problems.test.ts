import { describe, expect, it } from "vitest";
import { htmlProblems } from "./html-problems.ts";

const page = (head: string, body: string, doctype = "<!DOCTYPE html>\n") =>
  `${doctype}<html lang="en"><head><meta charset="UTF-8">${head}</head><body>${body}</body></html>\n`;
const TITLE = "<title>Setup</title>";

describe("htmlProblems", () => {
  it("accepts a well-formed page", () => {
    expect(
      htmlProblems(
        page(
          `${TITLE}<link rel="stylesheet" href="/a.css"><style>p > a {}</style>`,
          `<!-- note --><p>a &lt; b <img src="x.svg" alt='a>b'><br/></p><script>if (1 < 2) {}</script>`,
        ),
      ),
    ).toEqual([]);
  });

  it.each([
    [
      "a doubled doctype",
      page(TITLE, "", "<!DOCTYPE html>\n<!DOCTYPE html>\n"),
      "expected one <!DOCTYPE html>, found 2",
    ],
    ["no doctype", page(TITLE, "", ""), "expected one <!DOCTYPE html>, found 0"],
    [
      "text before the doctype",
      page(TITLE, "", "x<!DOCTYPE html>"),
      "does not start with <!DOCTYPE html>",
    ],
    ["no title", page("", ""), "expected one <title>, found 0"],
    ["an empty title", page("<title> </title>", ""), "the <title> is empty"],
    ["two bodies", page(TITLE, "</body><body>"), "expected one <body>, found 2"],
    ["an unclosed element", page(TITLE, "<div><p>x</div>"), "</div> at offset"],
    ["a stray end tag", page(TITLE, "</div>"), "</div> at offset"],
    ["a broken attribute", page(TITLE, `<a href="x>y</a>`), "malformed tag"],
    ["a repeated attribute", page(TITLE, `<a href="x" HREF="y">y</a>`), "repeats href"],
    ["an end tag of a void element", page(TITLE, "<br></br>"), "end tag </br>"],
    ["text after the document", `${page(TITLE, "")}trailing`, "text after </html>"],
  ])("finds %s", (_, html, problem) => {
    expect(htmlProblems(html).join("\n")).toContain(problem);
  });
});
