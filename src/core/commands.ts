/**
 * The slash-command grammar (design §7): a command is a line that starts with `/<verb>` or
 * `/conveyor <verb>`, followed by its arguments. Lines inside block quotes, fenced code blocks or
 * inline code are never commands, so quoting someone's `/retry` does nothing.
 */
export interface ParsedCommand {
  verb: string;
  /** The rest of the line, trimmed. */
  args: string;
  /** 1-based line number in the comment. */
  line: number;
}

export function parseCommands(body: string): ParsedCommand[] {
  const commands: ParsedCommand[] = [];
  let fence: string | undefined;
  const lines = body.replace(/\r\n?/g, "\n").split("\n");
  for (const [index, raw] of lines.entries()) {
    const line = raw.trimEnd();
    const fenceMatch = /^\s{0,3}(`{3,}|~{3,})/.exec(line);
    if (fenceMatch) {
      const marker = fenceMatch[1]!;
      if (!fence) fence = marker;
      else if (marker[0] === fence[0] && marker.length >= fence.length) fence = undefined;
      continue;
    }
    if (fence) continue;
    const text = line.trimStart();
    if (text.startsWith(">")) continue;
    const match = /^\/(?:conveyor\s+)?([a-z][a-z-]*)(?:\s+(.*))?$/i.exec(text);
    if (!match) continue;
    commands.push({
      verb: match[1]!.toLowerCase(),
      args: (match[2] ?? "").trim(),
      line: index + 1,
    });
  }
  return commands;
}
