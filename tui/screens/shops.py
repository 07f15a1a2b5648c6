"""Shops (在庫管理設定 ショップ一覧): the shops on the left; on the right the selected shop's
settings form as the manual lays it out (seed/step3-inventory-settings.ja.txt), with only
the settings its mall kind has (``mall_settings``). Save (ctrl+s) sends ONE ``shop_set`` of
what was changed, as text the way ``zaiko shops set KEY=VALUE`` takes it; a refusal is said
under its field. From here too: an audit (ctrl+t), reflect now (ctrl+r) after its dry run, and
a shops file applied (ctrl+o, ``zaiko shops apply FILE``) once its shops were confirmed.
Live: a changed shop is re-read, and what the operator is editing is kept."""

from __future__ import annotations

import asyncio
from typing import Any, ClassVar, Literal, get_args, get_origin

from rich.cells import cell_len
from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.widget import Widget
from textual.widgets import ContentSwitcher, Input, Label, OptionList, Select, Static, Switch
from textual.widgets.option_list import Option

from cli.client import ClientError, RequestFailed
from protocols import control
from protocols.malls import capability
from protocols.settings import (
    SETTING_GROUPS,
    SETTING_TYPES,
    SettingGroup,
    SettingsError,
    ShopSettings,
    decode_shops_toml,
    mall_settings,
    min_shown_of,
    setting_text,
    setting_value,
)
from tui.labels import Labels
from tui.screens.base import ZaikoScreen, local_time
from tui.screens.dialogs import ConfirmDialog, PathDialog
from tui.screens.shop_dialogs import BacklogDialog, GuardDialog, ReflectDialog

Heading = Literal["basic", "mall_link", "intake"]
HEADINGS: tuple[Heading, ...] = ("basic", "mall_link", "intake")
# The manual's three headings (基本設定 / モール連携設定 / 受注取込設定) hold zaiko's setting
# groups thus: 基本設定 is the seed's (1)–(9), which are zaiko's general and stock_out
# settings, and the audit's schedule (zaiko's own, an hour list like 一括更新時刻);
# モール連携設定 is how zaiko reaches the mall: file_transport and api, and also ``transport``
# itself (the seed's 在庫反映・送信タイプ heads モール連携設定, though zaiko files it under
# stock_out) and Yahoo's ストア都合キャンセル flag (the seed lists it there: it acts on what is
# pushed); 受注取込設定 holds the other mall options, which are all about the orders taken
# (Amazon's pending/cancellation options too, which the seed lists under モール連携設定, so
# that every mall's order options are under the one heading).
HEADING_OF_GROUP: dict[SettingGroup, Heading] = {
    "general": "basic",
    "stock_out": "basic",
    "audit": "basic",
    "file_transport": "mall_link",
    "api": "mall_link",
    "option": "intake",
}
HEADING_OF_KEY: dict[str, Heading] = {
    "transport": "mall_link",
    "clear_store_cancel_flag": "mall_link",
}
# the seed: the file settings are shown only while 在庫反映・送信タイプ is FTP
FILE_ONLY_GROUP: SettingGroup = "file_transport"
CREDENTIAL_SETTINGS = ("ftp_credential", "api_credential", "known_hosts")
HOUR_LISTS = ("bulk_sync_hours", "audit_hours")
SHOP_LIST_WIDTH = (16, 30)  # the list's cells, at least and at most
SHOP_LIST_MAX_PERCENT = 30  # of the screen's width
LABEL_MIN_CELLS = 12
LABEL_MAX_PERCENT = 45  # of the form's width: the widgets keep the rest


def heading_of(key: str) -> Heading:
    return HEADING_OF_KEY.get(key) or HEADING_OF_GROUP[SETTING_GROUPS[key]]


def widget_id(key: str, part: str) -> str:
    """A setting's widget id (``trickle.quantity`` → ``editor-trickle-quantity``): ids
    cannot hold dots, and no setting key holds a hyphen."""
    return f"{part}-{key.replace('.', '-')}"


def choices_of(key: str, mall: str) -> tuple[str, ...]:
    """The values a choice setting offers at this mall; () when it is no choice."""
    if key == "transport":
        return capability(mall).stock_out  # each mall takes stock by api, ftp or both
    annotation = SETTING_TYPES[key]
    return tuple(get_args(annotation)) if get_origin(annotation) is Literal else ()


def choice_label(labels: Labels, key: str, value: str) -> str:
    if key in ("order_intake", "reflect"):
        return labels(f"mode.{value}")
    return labels.maybe(f"value.{key}.{value}", value)


class SettingsForm(VerticalScroll, can_focus=False):
    """The settings form of one mall kind: each setting as the widget its type asks for,
    under the manual's headings. Building one takes a while (a hundred widgets), so the Shops
    screen builds one per mall kind, when first needed, and ``show`` puts a shop in it;
    ``settings`` are what the form shows as unchanged (what the daemon said last). Not a
    focus stop itself: Tab goes from the shop list straight to the first setting."""

    def __init__(self, labels: Labels, first: ShopSettings, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._labels = labels
        self._first = first
        self._keys = mall_settings(first.mall)
        self._label_cells = LABEL_MIN_CELLS
        self.settings: ShopSettings | None = None

    def compose(self) -> ComposeResult:
        labels = self._labels
        names = {key: labels(f"setting.{key}") for key in self._keys}
        # full-width text takes two cells a character
        self._label_cells = max(cell_len(name) for name in names.values()) + 1
        for heading in HEADINGS:
            keys = [key for key in self._keys if heading_of(key) == heading]
            if not keys:
                continue
            yield Static(labels(f"heading.{heading}"), classes="section")
            for key in keys:
                yield Label(names[key], id=widget_id(key, "label"), classes="setting-label")
                yield self._editor(key, self._first)
                yield Static("", id=widget_id(key, "error"), classes="setting-error")

    def on_resize(self) -> None:
        # the labels' column: as wide as the widest label, but at most a part of a narrow
        # screen (a longer label wraps), so that the widgets keep room
        cap = max(LABEL_MIN_CELLS, self.size.width * LABEL_MAX_PERCENT // 100)
        self.styles.grid_columns = f"{min(self._label_cells, cap)} 1fr"

    def show(self, settings: ShopSettings) -> None:
        """Show a shop of this form's mall kind, as saved; edits of another shop are gone."""
        self.settings = None  # nothing to compare with until every field shows this shop
        for key in self._keys:
            self._set_text(key, setting_text(setting_value(settings, key)))
        self.settings = settings
        self._show_defaults(settings)
        self.clear_errors()
        self.mark_edited()
        self.scroll_home(animate=False)

    def _show_defaults(self, settings: ShopSettings) -> None:
        """What an empty min_shown stands for at this shop (its transport, its mall)."""
        if "min_shown" in self._keys:
            editor = self.query_one(f"#{widget_id('min_shown', 'editor')}", Input)
            editor.placeholder = self._min_shown_hint(settings)

    def _min_shown_hint(self, settings: ShopSettings) -> str:
        return self._labels("shops.min_shown_hint", n=min_shown_of(settings))

    def _editor(self, key: str, settings: ShopSettings) -> Widget:
        value = setting_value(settings, key)
        text = setting_text(value)
        editor_id = widget_id(key, "editor")
        annotation = SETTING_TYPES[key]
        if annotation is bool:
            return Switch(value=bool(value), id=editor_id)
        if choices := choices_of(key, settings.mall):
            options = [(choice_label(self._labels, key, choice), choice) for choice in choices]
            return Select(options, value=text, allow_blank=False, compact=True, id=editor_id)
        if annotation is int:
            return Input(text, type="integer", compact=True, id=editor_id)
        if key == "min_shown":  # empty: worked out from how late the shop meets a change
            hint = self._min_shown_hint(settings)
            return Input(text, placeholder=hint, type="integer", compact=True, id=editor_id)
        return Input(text, placeholder=self._hint(key, settings.mall), compact=True, id=editor_id)

    def _hint(self, key: str, mall: str) -> str:
        """What an empty text setting means: its syntax, or the mall's default (the seed's
        通常の保存ディレクトリ, the mall's file names: empty is fine, as the seed says)."""
        cap = capability(mall)
        if key in HOUR_LISTS:
            return self._labels("shops.hours_hint")
        if key in CREDENTIAL_SETTINGS:
            # a credential is a file's name in the credentials dir: the secret is never here
            return self._labels("shops.credential_hint")
        if key == "ftp_dir" and cap.ftp_dir:
            return cap.ftp_dir
        # the shop's own names replace the mall's first files, in this order
        names = ("stock_file_name", "variation_file_name")
        file_names = dict(zip(names, cap.stock_files, strict=False))
        return file_names.get(key, "")

    # --- what the operator typed ------------------------------------------------------

    def text_of(self, key: str) -> str:
        """A setting's widget as ``shops set KEY=VALUE`` text."""
        editor = self.query_one(f"#{widget_id(key, 'editor')}")
        if isinstance(editor, Switch):
            return setting_text(editor.value)
        if isinstance(editor, Select):
            return str(editor.value)
        assert isinstance(editor, Input)
        return editor.value

    def _set_text(self, key: str, text: str) -> None:
        editor = self.query_one(f"#{widget_id(key, 'editor')}")
        if isinstance(editor, Switch):
            editor.value = text == "true"
        elif isinstance(editor, Select):
            editor.value = text
        elif isinstance(editor, Input):
            editor.value = text

    def _saved_text(self, key: str) -> str:
        assert self.settings is not None
        return setting_text(setting_value(self.settings, key))

    def changes(self) -> dict[str, str]:
        """The settings the operator changed, as ``KEY=VALUE`` texts."""
        if self.settings is None:
            return {}
        return {
            key: text for key in self._keys if (text := self.text_of(key)) != self._saved_text(key)
        }

    def merge(self, settings: ShopSettings) -> bool:
        """The shop changed at the daemon: show its new settings, except where the operator
        has typed something else (kept, still to be saved); True when edits were kept."""
        kept = False
        for key in self._keys:
            if self.text_of(key) == self._saved_text(key):
                self._set_text(key, setting_text(setting_value(settings, key)))
            else:
                kept = True
        self.settings = settings
        self._show_defaults(settings)
        self.mark_edited()
        return kept

    def saved(self, settings: ShopSettings) -> None:
        """Every change was saved: show the settings as the daemon stored them (``3, 15``
        comes back ``3,15``)."""
        self.settings = settings
        for key in self._keys:
            self._set_text(key, self._saved_text(key))
        self._show_defaults(settings)
        self.mark_edited()

    def mark_edited(self) -> None:
        if self.settings is None:
            return
        changed = self.changes()
        for key in self._keys:
            self.query_one(f"#{widget_id(key, 'label')}").set_class(key in changed, "-edited")
        if "transport" in self._keys:
            by_file = self.text_of("transport") == "ftp"
            for key in self._keys:
                if SETTING_GROUPS[key] == FILE_ONLY_GROUP:
                    self._show_field(key, by_file)

    def _show_field(self, key: str, shown: bool) -> None:
        for part in ("label", "editor"):
            self.query_one(f"#{widget_id(key, part)}").display = shown

    # --- the daemon's refusals, at their field --------------------------------------------

    def show_error(self, key: str, message: str) -> None:
        """Say ``message`` under the setting ``key``, if the form has it (a refusal may name
        no setting: ``shop``, ``backlog``; the notice line says those)."""
        if key not in self._keys:
            return
        error = self.query_one(f"#{widget_id(key, 'error')}", Static)
        error.update(message)
        error.add_class("-shown")
        self._show_field(key, True)
        self.call_after_refresh(self.query_one(f"#{widget_id(key, 'editor')}").scroll_visible)

    def clear_errors(self) -> None:
        for error in self.query(".setting-error.-shown").results(Static):
            error.update("")
            error.remove_class("-shown")


class ShopsScreen(ZaikoScreen):
    MODE = "shops"
    BINDINGS: ClassVar[list[BindingType]] = [
        # ctrl keys: the form's inputs take letters
        Binding("ctrl+s", "save", "key.save"),
        Binding("ctrl+r", "reflect_now", "key.reflect_now"),
        Binding("ctrl+t", "audit", "key.audit"),
        Binding("ctrl+o", "apply_file", "key.apply_shops"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self._shop_ids: list[str] = []
        self._list_cells = SHOP_LIST_WIDTH[0]
        self._shop_id: str | None = None  # the shop the form shows, or is about to

    def compose(self) -> ComposeResult:
        yield from self.compose_top()
        with Horizontal(id="shops-body"):
            yield OptionList(id="shop-list")
            with Vertical(id="shop-pane"):
                yield Static("", id="shop-head")
                # one SettingsForm per mall kind, built when first shown
                yield ContentSwitcher(id="shop-forms")
        yield from self.compose_bottom()

    @property
    def form(self) -> SettingsForm | None:
        """The form shown (None before the first shop is)."""
        shown = self.query_one("#shop-forms", ContentSwitcher).visible_content
        return shown if isinstance(shown, SettingsForm) else None

    async def _form_for(self, settings: ShopSettings) -> SettingsForm:
        forms = self.query_one("#shop-forms", ContentSwitcher)
        form_id = f"form-{settings.mall}"
        if not forms.query_children(f"#{form_id}"):
            form = SettingsForm(self.labels, settings, id=form_id)
            form.display = False  # until it is the current one
            forms.loading = True
            try:
                await forms.mount(form)
            finally:  # a newer reload cancels this one: the form is mounted all the same
                forms.loading = False
        forms.current = form_id
        return forms.get_child_by_id(form_id, SettingsForm)

    async def load(self) -> None:
        status = await self.ask(control.GetStatus(id=0))
        if not isinstance(status, control.StatusReply):
            return
        if not status.shops:
            self.query_one("#shop-head", Static).update(self.labels("dash.no_shops"))
            return
        ids = [shop.id for shop in status.shops]
        if self._shop_id not in ids:
            self._shop_id = ids[0]
        self._show_list(status.shops)
        await self._load_shop()

    def _show_list(self, shops: tuple[control.ShopStatus, ...]) -> None:
        shop_list = self.query_one("#shop-list", OptionList)
        ids = [shop.id for shop in shops]
        if ids != self._shop_ids:  # rebuilt only when shops come or go: it moves the cursor
            self._shop_ids = ids
            shop_list.clear_options()
            shop_list.add_options(
                Option(
                    Text.assemble((shop.id, "bold"), "\n", (self._mall_name(shop.mall), "dim")),
                    id=shop.id,
                )
                for shop in shops
            )
            self._list_cells = 4 + max(  # padding and scrollbar
                cell_len(text) for shop in shops for text in (shop.id, self._mall_name(shop.mall))
            )
            self._size_list()
        if self._shop_id is not None:
            shop_list.highlighted = ids.index(self._shop_id)

    def on_resize(self) -> None:
        self._size_list()

    def _size_list(self) -> None:
        """As wide as the widest shop, within bounds that leave the form most of the width
        (a longer mall name wraps)."""
        low, high = SHOP_LIST_WIDTH
        high = min(high, self.size.width * SHOP_LIST_MAX_PERCENT // 100)
        self.query_one("#shop-list", OptionList).styles.width = max(
            low, min(self._list_cells, high)
        )

    @staticmethod
    def _mall_name(mall: str) -> str:
        return capability(mall).name_ja

    async def _load_shop(self) -> None:
        shop_id = self._shop_id
        if shop_id is None:
            return
        reply = await self.ask(control.ShopShow(id=0, shop=shop_id))
        if not isinstance(reply, control.ShopReply) or shop_id != self._shop_id:
            return
        form = self.form
        if form is None or form.settings is None or form.settings.id != shop_id:
            (await self._form_for(reply.shop)).show(reply.shop)
        elif form.merge(reply.shop):
            self.say(self.labels("shops.kept_edits", shop=shop_id))
        self._show_head(reply)

    def _show_head(self, reply: control.ShopReply) -> None:
        labels = self.labels
        head = Table.grid(padding=(0, 2))
        head.add_column(style="bold")
        head.add_column()
        name = f"{reply.shop.name} · " if reply.shop.name else ""
        head.add_row(reply.shop.id, name + self._mall_name(reply.shop.mall))
        status = reply.status
        if status is not None:
            for warning in status.warnings:
                head.add_row("!", Text(warning, style="yellow"))
            if status.intake.backlog:
                oldest = local_time(status.intake.backlog_oldest)
                head.add_row(labels("dash.backlog"), f"{status.intake.backlog} ({oldest})")
        self.query_one("#shop-head", Static).update(head)

    # --- choosing a shop --------------------------------------------------------------

    def on_option_list_option_highlighted(self, event: OptionList.OptionHighlighted) -> None:
        event.stop()
        shop_id = event.option.id
        if shop_id is not None and shop_id != self._shop_id:
            self.run_worker(
                self._switch_to(shop_id), group="switch", exclusive=True, exit_on_error=False
            )

    async def _switch_to(self, shop_id: str) -> None:
        form = self.form
        if self._shop_id is not None and form is not None and form.changes():
            question = self.labels("shops.discard", shop=self._shop_id)
            if not await self.app.push_screen_wait(ConfirmDialog(self.labels, question)):
                self.query_one("#shop-list", OptionList).highlighted = self._shop_ids.index(
                    self._shop_id
                )
                return
        self._shop_id = shop_id
        self.reload()

    def on_input_changed(self, event: Input.Changed) -> None:
        event.stop()
        self._edited()

    def on_switch_changed(self, event: Switch.Changed) -> None:
        event.stop()
        self._edited()

    def on_select_changed(self, event: Select.Changed) -> None:
        event.stop()
        self._edited()

    def _edited(self) -> None:
        form = self.form
        if form is not None:
            form.mark_edited()

    def daemon_changed(self, event: control.Event) -> None:
        if isinstance(event, control.ShopChanged):
            self.reload_soon()

    # --- saving -----------------------------------------------------------------------

    def action_save(self) -> None:
        self.run_worker(self._save(), group="save", exclusive=True, exit_on_error=False)

    async def _save(self) -> None:
        labels = self.labels
        form = self.form
        if form is None or form.settings is None:
            return
        shop_id = form.settings.id
        changes = form.changes()
        if not changes:
            self.say(labels("shops.unchanged"))
            return
        form.clear_errors()
        force = False
        backlog: control.BacklogChoice = ""
        while True:
            request = control.ShopSet(
                id=0, shop=shop_id, changes=changes, force=force, backlog=backlog
            )
            try:
                reply = await self.zaiko.link.request(request)
            except RequestFailed as exc:
                error = exc.error
                # the activation guard lists the SKUs that would be pushed 0: the operator
                # may push anyway; intake switched on while orders waited needs a choice
                if error.code == "refused" and error.field == "reflect" and not force:
                    if await self.app.push_screen_wait(GuardDialog(labels, error)):
                        force = True
                        continue
                elif error.code == "refused" and error.field == "order_intake" and not backlog:
                    choice = await self.app.push_screen_wait(BacklogDialog(labels, error.message))
                    if choice:
                        backlog = choice
                        continue
                self._refused(exc)
                return
            except ClientError as exc:
                self.say(" ".join(str(exc).split()), error=True)
                return
            break
        if isinstance(reply, control.ShopReply):
            form.saved(reply.shop)
            self._show_head(reply)
            self.say(labels("shops.saved", shop=shop_id, keys=", ".join(changes)))

    def _refused(self, exc: RequestFailed) -> None:
        error = exc.error
        at_field = error.message.removeprefix(f"{error.field}: ")
        if error.details:
            at_field += f" ({', '.join(error.details)})"
        form = self.form
        if form is not None:
            form.show_error(error.field, at_field)
        self.say(" ".join(str(exc).split()), error=True)

    # --- audit and reflect now ----------------------------------------------------------

    def action_audit(self) -> None:
        if self._shop_id is not None:
            self.run_worker(self._audit(self._shop_id), group="audit", exit_on_error=False)

    async def _audit(self, shop_id: str) -> None:
        reply = await self.ask(control.AuditStart(id=0, shop=shop_id))
        if isinstance(reply, control.JobReply):
            self.say(self.labels("shops.audit_started", shop=shop_id, job=reply.job.id))

    def action_reflect_now(self) -> None:
        form = self.form
        if form is not None and form.settings is not None:
            settings = form.settings
            self.run_worker(
                self._reflect_now(settings), group="reflect", exclusive=True, exit_on_error=False
            )

    async def _reflect_now(self, settings: ShopSettings) -> None:
        labels = self.labels
        dry_run = await self.ask(control.ReflectNow(id=0, shop=settings.id, dry_run=True))
        if not isinstance(dry_run, control.ReflectReply):
            return
        if not dry_run.rows:
            self.say(labels("reflect.nothing", shop=settings.id))
            return
        can_send = settings.reflect == "active"
        if not await self.app.push_screen_wait(ReflectDialog(labels, dry_run, can_send)):
            return
        sent = await self.ask(control.ReflectNow(id=0, shop=settings.id))
        if isinstance(sent, control.ReflectReply):
            self.say(labels("reflect.sent", shop=settings.id, pending=sent.pending))

    # --- a shops file -------------------------------------------------------------------

    def action_apply_file(self) -> None:
        self.run_worker(self._apply_file(), group="apply", exclusive=True, exit_on_error=False)

    async def _apply_file(self) -> None:
        labels = self.labels
        path = await self.app.push_screen_wait(
            PathDialog(labels, "shops.apply_title", "shops.apply_read")
        )
        if path is None:
            return
        try:
            shops = decode_shops_toml(await asyncio.to_thread(path.read_bytes))
        except OSError as exc:
            self.say(labels("import.unreadable", path=path, error=exc.strerror), error=True)
            return
        except SettingsError as exc:
            self.say(" ".join(f"{path.name}: {exc}".split()), error=True)
            return
        if not shops:
            self.say(labels("shops.apply_none", file=path.name), error=True)
            return
        listed = "\n".join(
            f"  {shop.id}  {self._mall_name(shop.mall)} ({shop.mall})  "
            + labels("shops.apply_update" if shop.id in self._shop_ids else "shops.apply_new")
            for shop in shops
        )
        question = labels("shops.apply_confirm", file=path.name) + "\n" + listed
        if not await self.app.push_screen_wait(ConfirmDialog(labels, question)):
            return
        force = False
        while True:
            try:
                reply = await self.zaiko.link.request(
                    control.ShopsApply(id=0, shops=shops, force=force)
                )
            except RequestFailed as exc:
                # as for a save: reflect switched on while linked SKUs never had stock
                error = exc.error
                if error.code == "refused" and error.field == "reflect" and not force:
                    if await self.app.push_screen_wait(GuardDialog(labels, error)):
                        force = True
                        continue
                self.say(" ".join(str(exc).split()), error=True)
                return
            except ClientError as exc:
                self.say(" ".join(str(exc).split()), error=True)
                return
            break
        if isinstance(reply, control.ShopsReply):
            done = labels(
                "shops.applied",
                count=len(reply.shops),
                shops=", ".join(shop.id for shop in reply.shops),
            )
            self.say(" · ".join([done, *reply.warnings]))
            self.reload()
