// A small, safe markdown renderer for model answers.
//
// Safety first: the whole source is HTML-escaped before any markup is added, so model output
// can never inject tags or attributes. Links only keep http(s), mailto and relative targets.
// Supported: paragraphs, line breaks (every newline inside a paragraph), headings, **bold**, *italic*, ~~strike~~, `inline code`,
// fenced code blocks (an unclosed fence runs to the end, which suits streaming), bullet and
// numbered lists (one nesting level by indentation), blockquotes, horizontal rules, [links](url)
// and bare http(s) URLs.

const ESCAPES = { "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" };

export function escapeHtml(text) {
  return String(text).replace(/[&<>"']/g, (c) => ESCAPES[c]);
}

const SAFE_URL = /^(https?:\/\/|mailto:|\/(?!\/)|#|\.{1,2}\/)/i;

function safeUrl(escapedUrl) {
  // The URL is already escaped (no quotes or angle brackets can break out of the attribute).
  const url = escapedUrl.trim();
  return SAFE_URL.test(url) ? url : null;
}

function link(label, url) {
  return `<a href="${url}" target="_blank" rel="noopener noreferrer">${label}</a>`;
}

// Inline markup over already-escaped text. Code spans are cut out first so nothing inside them
// is interpreted; they are put back at the end through private-use placeholders.
function inline(text) {
  const slots = [];
  const keep = (html) => `\uE000${slots.push(html) - 1}\uE001`;
  let out = text.replace(/(`+)([^`]|[^`][\s\S]*?[^`])\1(?!`)/g, (_, __, code) => keep(`<code>${code.trim() || code}</code>`));
  out = out.replace(/\[([^\]\n]+)\]\(([^)\s]+)(?:\s+&quot;[^\n]*?&quot;)?\)/g, (whole, label, url) => {
    const safe = safeUrl(url);
    return safe ? keep(link(label, safe)) : whole; // an unsafe target stays plain text
  });
  out = out.replace(/(^|[\s(;])(https?:\/\/[^\s<]+)/g, (_, pre, found) => {
    // A bare URL ends before an escaped quote or bracket and before trailing punctuation.
    let url = found.split(/&quot;|&#39;|&gt;/)[0];
    url = url.replace(/(&amp;|[.,:;!?)'])+$/, "");
    return url.length > 8 ? pre + keep(link(url, url)) + found.slice(url.length) : pre + found;
  });
  out = out.replace(/\*\*(?=\S)([\s\S]*?\S)\*\*/g, "<strong>$1</strong>");
  out = out.replace(/(^|[^\w])__(?=\S)([\s\S]*?\S)__(?!\w)/g, "$1<strong>$2</strong>");
  out = out.replace(/(^|[^*\w])\*(?=[^\s*])([^*\n]*?[^\s*])\*(?!\*)/g, "$1<em>$2</em>");
  out = out.replace(/(^|[^\w])_(?=[^\s_])([^_\n]*?[^\s_])_(?!\w)/g, "$1<em>$2</em>");
  out = out.replace(/~~(?=\S)([\s\S]*?\S)~~/g, "<del>$1</del>");
  out = out.replace(/ *\\?\n/g, "<br>"); // chat answers mean a line break when they break a line
  const restore = (html) => html.replace(/\uE000(\d+)\uE001/g, (_, i) => restore(slots[Number(i)]));
  return restore(out);
}

const FENCE = /^ {0,3}(`{3,}|~{3,})\s*([\w+#.-]*)[^\n]*$/;
const HEADING = /^ {0,3}(#{1,6})\s+(.*?)\s*#*\s*$/;
const RULE = /^ {0,3}([-*_])(\s*\1){2,}\s*$/;
const BULLET = /^(\s*)([-*+])\s+(.*)$/;
const ORDERED = /^(\s*)(\d{1,9})[.)]\s+(.*)$/;
const QUOTE = /^ {0,3}&gt;\s?(.*)$/;

function listItem(line) {
  const b = BULLET.exec(line);
  if (b) return { indent: b[1].length, ordered: false, start: 1, text: b[3] };
  const o = ORDERED.exec(line);
  if (o) return { indent: o[1].length, ordered: true, start: Number(o[2]), text: o[3] };
  return null;
}

function renderList(lines, i) {
  // Items of one list; deeper-indented items become a nested list inside the previous item.
  const first = listItem(lines[i]);
  const tag = first.ordered ? "ol" : "ul";
  const start = first.ordered && first.start !== 1 ? ` start="${first.start}"` : "";
  const items = [];
  while (i < lines.length) {
    const item = listItem(lines[i]);
    if (item && item.indent < first.indent) break; // back to the enclosing list
    if (item && item.indent <= first.indent + 1) {
      if (item.ordered !== first.ordered) break;
      items.push({ text: [item.text], children: "" });
      i++;
    } else if (item && items.length) {
      const [html, next] = renderList(lines, i);
      items[items.length - 1].children += html;
      i = next;
    } else if (lines[i].trim() && items.length && /^\s+\S/.test(lines[i])) {
      items[items.length - 1].text.push(lines[i].trim()); // a continuation line of the item
      i++;
    } else {
      break;
    }
  }
  const body = items.map((it) => `<li>${inline(it.text.join("\n"))}${it.children}</li>`).join("");
  return [`<${tag}${start}>${body}</${tag}>`, i];
}

function renderBlocks(lines) {
  const out = [];
  let para = [];
  const flush = () => {
    if (para.length) out.push(`<p>${inline(para.join("\n"))}</p>`);
    para = [];
  };
  let i = 0;
  while (i < lines.length) {
    const line = lines[i];
    const fence = FENCE.exec(line);
    if (fence) {
      flush();
      const marker = fence[1];
      const lang = fence[2];
      const body = [];
      i++;
      while (i < lines.length && !new RegExp(`^ {0,3}${marker[0]}{${marker.length},}\\s*$`).test(lines[i])) {
        body.push(lines[i]);
        i++;
      }
      i++; // the closing fence (or past the end)
      const cls = lang ? ` class="language-${lang}"` : "";
      const label = lang ? `<span class="code-lang">${lang}</span>` : "";
      out.push(`<div class="code-block">${label}<pre><code${cls}>${body.join("\n")}</code></pre></div>`);
      continue;
    }
    if (!line.trim()) {
      flush();
      i++;
      continue;
    }
    const heading = HEADING.exec(line);
    if (heading) {
      flush();
      const level = Math.min(heading[1].length + 2, 6); // keep answer headings below the page's own
      out.push(`<h${level}>${inline(heading[2])}</h${level}>`);
      i++;
      continue;
    }
    if (RULE.test(line) && !para.length) {
      out.push("<hr>");
      i++;
      continue;
    }
    if (listItem(line) && (!para.length || !/^\s/.test(line))) {
      flush();
      const [html, next] = renderList(lines, i);
      out.push(html);
      i = next;
      continue;
    }
    if (QUOTE.test(line)) {
      flush();
      const quoted = [];
      while (i < lines.length && QUOTE.test(lines[i])) {
        quoted.push(QUOTE.exec(lines[i])[1]);
        i++;
      }
      out.push(`<blockquote>${renderBlocks(quoted)}</blockquote>`);
      continue;
    }
    para.push(line);
    i++;
  }
  flush();
  return out.join("");
}

/** Markdown source → safe HTML. */
export function renderMarkdown(source) {
  const text = escapeHtml(String(source ?? "").replace(/\r\n?/g, "\n"));
  return renderBlocks(text.split("\n"));
}
