// The dashboard's code editor: every <textarea data-code> of the page becomes a CodeMirror 6
// editor (line numbers, Python or JavaScript highlighting, the usual keys) that writes its text
// back into the textarea as it changes, so the form posts what the editor shows, exactly as it
// would without this script. Bundled by esbuild into one file the coordinator serves itself
// (fulmen.coordinator.dashboard.bundle): no inline script or style, nothing from elsewhere.
//
// A textarea says its language through the <select> named by data-language-from, and the line
// the server's syntax check refused through data-error-line: that line is marked, and scrolled
// to. Tab is left to move the focus (CodeMirror's default): a keyboard user must be able to
// leave the editor; indenting is Ctrl-] and Ctrl-[.
import { basicSetup } from "codemirror";
import { Compartment, StateField } from "@codemirror/state";
import { Decoration, EditorView } from "@codemirror/view";
import { python } from "@codemirror/lang-python";
import { javascript } from "@codemirror/lang-javascript";

const LANGUAGES = { python: () => python(), javascript: () => javascript() };

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

function attach(textarea) {
  const select = textarea.dataset.languageFrom
    ? document.getElementById(textarea.dataset.languageFrom)
    : null;
  const language = new Compartment();
  const holder = document.createElement("div");
  holder.className = "code-editor";
  textarea.after(holder);
  const errorLine = Number(textarea.dataset.errorLine || 0);
  const labelled = textarea.id ? document.querySelector(`label[for="${textarea.id}"]`) : null;
  const attributes = { "aria-multiline": "true" };
  if (labelled) {
    labelled.id ||= `${textarea.id}-label`;
    attributes["aria-labelledby"] = labelled.id;
  }
  if (textarea.getAttribute("aria-describedby")) {
    attributes["aria-describedby"] = textarea.getAttribute("aria-describedby");
  }
  const view = new EditorView({
    doc: textarea.value,
    parent: holder,
    extensions: [
      basicSetup,
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
  if (select) {
    select.addEventListener("change", () => {
      view.dispatch({ effects: language.reconfigure(languageOf(select.value)) });
    });
  }
  if (labelled) labelled.addEventListener("click", () => view.focus());
  textarea.hidden = true;
  holder.dataset.language = select ? select.value : textarea.dataset.code;
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
