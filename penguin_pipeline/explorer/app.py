"""The model explorer: the book's "Penguin Mass Predictor" as a Shiny for Python app that asks the
prediction API for everything (the presentation layer; docs/how-to/explorer.md).

The inputs are made from the served version's /inputs, every prediction is a POST /predict, the
figure is drawn from /summary; the board and the warehouse are never opened here. The server only
wires inputs to client.py and view.py, which hold the logic and are tested without a browser.
"""

from __future__ import annotations

import asyncio

from shiny import App, Inputs, Outputs, Session, reactive, render, ui
from shiny.types import SilentException

from penguin_pipeline.settings import Settings, load_settings

from . import view
from .client import ApiClient, ApiProblem, InputField, ServedInputs

TITLE = "Penguin Mass Predictor"
# until the API has told the inputs and the lookup table, ask again this often
RETRY_SECONDS = 2.0


# Shiny's numeric input sends a typed value only after a 250 ms pause (a debounce), which alone
# takes most of the 0.3 s the explorer has to answer a keystroke. A value within the input's
# accepted range is sent at once (its "change" handler sends without waiting); one outside it
# waits as before, so a half-typed "4" of "45" does not flash the API's refusal.
SEND_AT_ONCE = """
document.addEventListener("input", (event) => {
  const el = event.target;
  if (!el.matches || !el.matches("input[type=number]")) return;
  const v = el.valueAsNumber;
  if (Number.isFinite(v) && v >= Number(el.min) && v <= Number(el.max)) $(el).trigger("change");
});
"""


def field_id(name: str) -> str:
    return f"field_{name}"


def field_input(spec: InputField, current, example: dict):
    """One input for one field of the served version; keeps the person's value if still valid."""
    if spec.categories is not None:
        chosen = current if current in spec.categories else example.get(spec.name)
        return ui.input_select(
            field_id(spec.name), spec.label, list(spec.categories), selected=chosen
        )
    value = current if isinstance(current, int | float) else example.get(spec.name)
    if value is None:
        value = round((spec.low + spec.high) / 2, 1)
    label = f"{spec.label}, {spec.low:g} to {spec.high:g}"
    return ui.input_numeric(
        field_id(spec.name), label, value, min=spec.low, max=spec.high, step=0.1
    )


app_ui = ui.page_sidebar(
    ui.sidebar(
        ui.output_ui("fields"),
        ui.output_ui("admin_panel"),
        width=320,
    ),
    ui.output_ui("problem"),
    ui.card(
        ui.card_header("Predicted body mass"),
        ui.h2(ui.output_text("grams", inline=True)),
        ui.output_ui("version"),
    ),
    ui.card(
        ui.card_header("Among the penguins of this species and sex"),
        ui.output_ui("placement"),
        ui.output_text("placement_text"),
    ),
    ui.tags.script(SEND_AT_ONCE),
    ui.tags.style(view.FIGURE_CSS),
    title=TITLE,
)


def make_server(client: ApiClient):
    def server(input: Inputs, output: Outputs, session: Session):
        served = reactive.value[ServedInputs | None](None)
        served_fields = reactive.value[tuple[InputField, ...]](())
        inputs_problem = reactive.value[str | None](None)
        summary = reactive.value[list[dict] | None](None)
        summary_problem = reactive.value[str | None](None)
        admin = reactive.value(False)
        admin_result = reactive.value("")

        async def load_inputs() -> None:
            """Ask the API what the served version accepts, its lookup table, and (once the API
            answers) whether the explorer's key is an admin's."""
            try:
                known = await asking(client.inputs)
            except ApiProblem as problem:
                inputs_problem.set(problem.sentence)
                return
            inputs_problem.set(None)
            served.set(known)
            if known.fields != served_fields.get():  # same inputs, new version: no redraw
                served_fields.set(known.fields)
            try:
                summary.set(await asking(client.summary))
                summary_problem.set(None)
            except ApiProblem as problem:
                summary_problem.set(problem.sentence)
            admin.set(await asking(client.is_admin))

        @reactive.effect
        async def _until_the_api_has_answered():
            # A timer, not a dependency on what load_inputs sets: that would loop at once.
            reactive.invalidate_later(RETRY_SECONDS)
            with reactive.isolate():
                if served.get() is None or summary.get() is None:
                    await load_inputs()

        @render.ui
        def fields():
            known = served_fields()
            with reactive.isolate():
                example = served().example if served() else {}
                current = {f.name: _value(input, f.name) for f in known}
            return [field_input(f, current[f.name], example) for f in known]

        @reactive.calc
        async def outcome() -> view.Outcome | None:
            known = served_fields()
            if not known:
                return None
            record = {f.name: input[field_id(f.name)]() for f in known}
            return await asking(view.predict, client, record)

        @reactive.effect
        async def _follow_a_new_version():
            result = await outcome()
            with reactive.isolate():
                known = served()
            if result and result.prediction and known:
                if result.prediction.model_version != known.model_version:
                    # the API swapped versions: its inputs and champion may differ
                    await load_inputs()

        @render.ui
        async def problem():
            sentence = inputs_problem() if served() is None else None
            result = await outcome()
            sentence = sentence or (result.problem if result else None)
            if not sentence:
                return None
            return ui.div(sentence, class_="alert alert-danger", role="alert", id="problem-text")

        @render.text
        async def grams():
            result = await outcome()
            return view.grams(result.prediction) if result and result.prediction else "-"

        @render.ui
        async def version():
            result = await outcome()
            if not (result and result.prediction):
                return None
            lines = view.version_lines(result.prediction, served())
            return ui.div(*[ui.p(line, class_="mb-1") for line in lines], id="version-lines")

        @reactive.calc
        async def placed() -> view.Placement | None:
            result, rows = await outcome(), summary()
            if not (result and result.prediction and rows):
                return None
            species, sex = input[field_id("species")](), input[field_id("sex")]()
            return view.place(rows, species, sex, result.prediction.grams)

        @render.ui
        async def placement():
            found = await placed()
            return view.figure(found) if found else None

        @render.text
        async def placement_text():
            if summary_problem():
                return summary_problem()
            result = await outcome()
            if not (result and result.prediction and summary()):
                return ""
            species, sex = input[field_id("species")](), input[field_id("sex")]()
            return view.describe(await placed(), species, sex)

        @render.ui
        def admin_panel():
            if not admin():  # never offered unless the explorer's own key has the admin scope
                return None
            return ui.div(
                ui.hr(),
                ui.input_switch("admin_on", "Enable admin actions", value=False),
                ui.panel_conditional(
                    "input.admin_on",
                    ui.input_action_button("reload", "Reload the model from the board"),
                    ui.output_text("admin_said"),
                ),
            )

        @reactive.effect
        @reactive.event(input.reload)
        async def _reload():
            if not (admin() and input.admin_on()):  # the switch is the consent, the key the right
                return
            admin_result.set(await asking(view.reload, client))
            await load_inputs()

        @render.text
        def admin_said():
            return admin_result()

    return server


async def asking(call, *args):
    """A blocking call to the API in a worker thread: a slow or hung API (up to the client's
    timeout) never stops the event loop, so other people's pages keep answering."""
    return await asyncio.to_thread(call, *args)


def _value(input: Inputs, name: str):
    """The person's current value of a field, or None before its input exists."""
    try:
        return input[field_id(name)]()
    except SilentException:  # the input was never rendered
        return None


def create_app(settings: Settings | None = None) -> App:
    settings = settings or load_settings()
    return App(app_ui, make_server(ApiClient(settings.api_url, settings.api_key)))
