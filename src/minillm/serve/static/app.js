// The chat page of `minillm serve`: ask a question, watch the answer stream in from POST /v1/answer.
// The page keeps the conversation (`history`) and sends it, so a follow-up such as "How hot is it there?"
// after "What is Venus?" is answered about Venus, as `minillm chat` and /v1/chat/completions answer it.
// Every string from the user, the model or an article is inserted as text (textContent, never innerHTML),
// so a question such as <img src=x onerror=alert(1)> is shown as typed and runs nothing.
"use strict";

const $ = (id) => document.getElementById(id);
const history = [];  // earlier turns, oldest first: {question, answer}
const MAX_HISTORY = 64;  // the server's limit (MAX_MESSAGES)

function element(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

function count(n) {
  if (n >= 1e6) return `${(n / 1e6).toFixed(2)}M`;
  if (n >= 1e3) return `${(n / 1e3).toFixed(1)}k`;
  return String(n);
}

async function showModel() {
  const response = await fetch("/v1/models");
  const model = (await response.json()).data[0];
  const meta = model.meta;
  $("model-name").textContent = model.id;
  $("model-size").textContent = `${count(meta.parameters)} parameters · ${meta.size_mb.toFixed(2)} MB · `
    + `context ${meta.context_length} tokens`;
  $("browser-engine").hidden = !meta.browser_engine;  // minillm serve --web SITE: the same model in WebAssembly
  if (meta.open_book) {
    $("mode").value = "open";  // the best answers first: from the retrieved passages, with their sources
    // who reads the passages and why (answering/reader.py: reader_info), as ask --json says it
    $("reader-info").textContent = `Open book, reader "${meta.reader}": ${meta.reader_why}.`;
    $("reader-info").hidden = false;
  } else {
    const open = $("mode").querySelector('option[value="open"]');
    open.disabled = true;
    open.textContent = "open-book (this run has no index)";
  }
}

// Only web addresses become links: a javascript: URL in an article record must stay inert text.
function webUrl(url) {
  try {
    const parsed = new URL(url);
    return parsed.protocol === "https:" || parsed.protocol === "http:" ? parsed.href : null;
  } catch {
    return null;
  }
}

function showSources(container, sources) {
  if (!sources.length) return;
  container.append(element("span", "label", "Sources"));
  const list = element("ul");
  for (const source of sources) {
    const href = webUrl(source.url);
    const title = element(href ? "a" : "span", "source-title", source.title);
    if (href) {
      title.href = href;
      title.target = "_blank";
      title.rel = "noopener noreferrer";
    }
    const item = element("li");
    item.append(title, element("span", "license", ` · ${source.license}`));
    list.append(item);
  }
  container.append(list);
}

// Server-sent events read from a fetch() body (EventSource can only GET).
async function* events(response) {
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buffer += value;
    let end;
    while ((end = buffer.indexOf("\n\n")) >= 0) {
      const data = buffer.slice(0, end).split("\n")
        .filter((line) => line.startsWith("data: ")).map((line) => line.slice(6)).join("\n");
      buffer = buffer.slice(end + 2);
      if (data) yield JSON.parse(data);
    }
  }
}

async function ask(question, mode, temperature) {
  const reply = element("li", "message assistant");
  const text = element("p", "answer-text");
  const sources = element("div", "sources");
  const stats = element("p", "stats", "thinking…");
  reply.append(text, sources, stats);
  reply.dataset.state = "waiting";
  $("log").append(element("li", "message user", question), reply);
  reply.scrollIntoView({ block: "end" });
  try {
    const response = await fetch("/v1/answer", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ question, history, mode, temperature, stream: true }),
    });
    if (!response.ok) {
      const body = await response.json().catch(() => null);
      throw new Error(body?.error?.message ?? `HTTP ${response.status}`);
    }
    for await (const event of events(response)) {
      if (event.type === "resolved") {
        reply.prepend(element("p", "resolved", `(about: ${event.question})`));
      } else if (event.type === "sources") {
        showSources(sources, event.sources);
      } else if (event.type === "text") {
        text.textContent += event.text;
        reply.dataset.state = "streaming";
        reply.scrollIntoView({ block: "end" });
      } else if (event.type === "done") {
        if (!text.textContent) text.textContent = "(no answer)";
        stats.textContent = `${mode}-book · ${event.usage.completion_tokens} tokens · `
          + `${event.timing.tokens_per_second} tokens/s · ${event.timing.seconds.toFixed(2)} s`;
      } else if (event.type === "error") {
        throw new Error(event.error.message);
      }
    }
    reply.dataset.state = "done";
    history.push({ question, answer: text.textContent });
    if (history.length > MAX_HISTORY) history.shift();
  } catch (error) {
    stats.textContent = `error: ${error.message}`;
    reply.classList.add("error");
    reply.dataset.state = "error";
  }
}

$("ask").addEventListener("submit", async (submitted) => {
  submitted.preventDefault();
  const question = $("question").value;
  const temperature = $("temperature").valueAsNumber;
  if (!question.trim()) return;
  if (Number.isNaN(temperature)) {
    $("form-error").textContent = "Temperature must be a number from 0 to 2.";
    return;
  }
  $("form-error").textContent = "";
  $("send").disabled = true;
  $("question").value = "";
  try {
    await ask(question, $("mode").value, temperature);
  } finally {
    $("send").disabled = false;
    $("question").focus();
  }
});

showModel().catch((error) => {
  $("model-name").textContent = `model information unavailable (${error.message})`;
});
