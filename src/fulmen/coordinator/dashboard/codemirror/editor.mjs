// The dashboard's code editor: every <textarea data-code> of the page becomes a CodeMirror 6
// editor (line numbers, Python or JavaScript highlighting, the usual keys) that writes its text
// back into the textarea as it changes, so the form posts what the editor shows, exactly as it
// would without this script. Bundled by esbuild into one file the coordinator serves itself
// (fulmen.coordinator.dashboard.bundle): no inline script or style, nothing from elsewhere.
//
// Each editor lives in a shadow root of its own. CodeMirror writes its styles at run time; in
// a document it does so with a <style> element, which the dashboard's Content-Security-Policy
// refuses (no inline styles), while in a shadow root it adopts constructed stylesheets, which
// the policy does not govern. The page's colours reach it as CSS custom properties.
//
// A textarea says its language through the <select> named by data-language-from, and the line
// the server's syntax check refused through data-error-line: that line is marked, and scrolled
// to. Tab is left to move the focus (CodeMirror's default): a keyboard user must be able to
// leave the editor; indenting is Ctrl-] and Ctrl-[.
import { basicSetup } from "codemirror";
import { Compartment, StateField } from "@codemirror/state";
import { Decoration, EditorView } from "@codemirror/view";
import { indentUnit } from "@codemirror/language";
import { python } from "@codemirror/lang-python";
import { javascript } from "@codemirror/lang-javascript";

// Each language with its usual indent: PEP 8's four spaces, OpenFn's examples' two.
const LANGUAGES = {
  python: () => [python(), indentUnit.of("    ")],
  javascript: () => [javascript(), indentUnit.of("  ")],
};

function languageOf(name) {
  return (LANGUAGES[name] || LANGUAGES.python)();
}

// The refused line, marked until the next save (its decoration follows edits around it).
function errorMark(number, message) {
  if (!number) return [];
  const mark = Decoration.line({
    class: "cm-fulmen-error",
    attributes: { title: message || `line ${number} does not parse` },
  });
  return StateField.define({
    create: (state) =>
      number > state.doc.lines
        ? Decoration.none
        : Decoration.set([mark.range(state.doc.line(number).from)]),
    update: (marks, tr) => marks.map(tr.changes),
    provide: (field) => EditorView.decorations.from(field),
  });
}

// The page's look, in the shadow root: its custom properties inherit into it.
const THEME = EditorView.theme({
  "&": { color: "var(--text)", backgroundColor: "var(--card)", fontSize: "0.875rem" },
  "&.cm-focused": { outline: "none" },
  ".cm-scroller": { fontFamily: "var(--mono)", minHeight: "10rem", maxHeight: "28rem" },
  ".cm-content": { caretColor: "var(--text)" },
  ".cm-gutters": {
    backgroundColor: "var(--idle-bg)",
    color: "var(--muted)",
    borderRight: "1px solid var(--border)",
  },
  ".cm-activeLine, .cm-activeLineGutter": { backgroundColor: "transparent" },
  ".cm-fulmen-error": {
    backgroundColor: "var(--bad-bg)",
    boxShadow: "inset 4px 0 0 var(--bad)",
  },
});

// Typing over a selection: Chrome, left to do it in the editable DOM, keeps the look of the
// text it deleted (a highlighted token's colour) as a style attribute on what is typed, which
// the dashboard's Content-Security-Policy refuses, and says so in the console. The editor
// makes the change itself instead, as it does for the keys it binds.
const TYPE_OVER_SELECTION = EditorView.domEventHandlers({
  beforeinput(event, view) {
    const { state } = view;
    if (event.inputType !== "insertText" || !event.data || view.composing) return false;
    if (state.selection.ranges.every((range) => range.empty)) return false;
    event.preventDefault();
    view.dispatch(
      state.update(state.replaceSelection(event.data), {
        scrollIntoView: true,
        userEvent: "input.type",
      }),
    );
    return true;
  },
});

function attach(textarea) {
  const select = textarea.dataset.languageFrom
    ? document.getElementById(textarea.dataset.languageFrom)
    : null;
  const language = new Compartment();
  const host = document.createElement("div");
  host.className = "code-editor";
  textarea.after(host);
  const shadow = host.attachShadow({ mode: "open" });
  const errorLine = Number(textarea.dataset.errorLine || 0);
  const label = textarea.id ? document.querySelector(`label[for="${textarea.id}"]`) : null;
  // ids do not reach into a shadow root: the label and the error are said in words
  const attributes = { "aria-multiline": "true" };
  const name = label ? label.textContent.trim() : "Code";
  const legend = textarea.closest("fieldset")?.querySelector("legend");
  attributes["aria-label"] = legend ? `${name} of ${legend.textContent.trim()}` : name;
  if (errorLine) attributes["aria-description"] = textarea.dataset.errorMessage || "";
  const view = new EditorView({
    doc: textarea.value,
    root: shadow,
    parent: shadow,
    extensions: [
      basicSetup,
      THEME,
      TYPE_OVER_SELECTION,
      language.of(languageOf(select ? select.value : textarea.dataset.code)),
      errorMark(errorLine, textarea.dataset.errorMessage),
      EditorView.contentAttributes.of(attributes),
      EditorView.updateListener.of((update) => {
        if (update.docChanged) textarea.value = update.state.doc.toString();
      }),
    ],
  });
  if (errorLine) {
    const line = Math.min(errorLine, view.state.doc.lines);
    view.dispatch({
      effects: EditorView.scrollIntoView(view.state.doc.line(line).from, { y: "center" }),
    });
  }
  host.dataset.language = select ? select.value : textarea.dataset.code;
  if (select) {
    select.addEventListener("change", () => {
      view.dispatch({ effects: language.reconfigure(languageOf(select.value)) });
      host.dataset.language = select.value;
    });
  }
  if (label) label.addEventListener("click", () => view.focus());
  textarea.hidden = true;
  return view;
}

function start() {
  for (const textarea of document.querySelectorAll("textarea[data-code]")) attach(textarea);
  document.documentElement.dataset.codeEditor = "ready";
}

if (document.readyState === "loading") {
  document.addEventListener("DOMContentLoaded", start);
} else {
  start();
}
