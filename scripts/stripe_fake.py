"""A local fake Stripe for ChargeFlow: localstripe's stateful API, bound to a loopback address.

    python scripts/stripe_fake.py --port 8420 [--host 127.0.0.1] [--public-url URL]

Run it with the venv that scripts/services.sh installs (localstripe is in
localstack/requirements.lock): services.sh starts one on 127.0.0.1:$STRIPE_PORT (default 8420),
and tests may start private ones with `"$CHARGEFLOW_VENV/bin/python" scripts/stripe_fake.py
--port P`. It is ready as soon as `GET /v1/payment_intents` answers (401 without a key).

- The API is localstripe's (https://github.com/adrienverge/localstripe): /v1/payment_intents
  (create with confirm=true, retrieve, list with limit/starting_after only, confirm, cancel,
  capture), /v1/refunds (create with payment_intent or charge, list with payment_intent or charge),
  /v1/charges, /v1/payment_methods, /v1/events, and more. Any `sk_test_...` key works, as HTTP basic
  auth (`sk_test_local:`) or a bearer token. State lives in memory only and is gone on exit.
- Idempotency-Key headers are ignored (localstripe does not implement them): a repeated create
  makes a second object.
- Lists come oldest first (real Stripe: newest first); page with `starting_after`, default limit 10.
- Webhooks: `POST /_config/webhooks/<any id>` with `url=...&secret=whsec_...` registers an endpoint;
  events are then POSTed to it about 1 s later, signed like Stripe's
  (`Stripe-Signature: t=<event.created>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>`).
  `DELETE /_config/data` empties the store.

What this script changes in localstripe (in memory, at start-up; localstripe itself is untouched):

1. It binds the address asked for. localstripe's own CLI (`python -m localstripe`) binds `::`,
   i.e. every interface; here its aiohttp `app` is imported and served on --host/--port only.
2. No pickle file. localstripe pickles its whole store to /tmp/localstripe.pickle after every
   write and reloads it at start: one file shared by every instance on the machine (parallel tests
   would overwrite each other's) and a cost that grows with the store. Both are turned off.
3. Stripe's test PaymentMethod ids. localstripe knows only `pm_card_visa` (4242 4242 4242 4242,
   succeeds), `pm_card_visa_chargeDeclined` (4000 0000 0000 0002) and `pm_card_chargeCustomerFail`
   (4000 0000 0000 0341), and turns those ids into a new pm_... object at each lookup. The ids in
   TEST_PAYMENT_METHODS below (`pm_card_chargeDeclined`, which Stripe declines on confirm,
   `pm_card_mastercard`, and `pm_card_authenticationRequired`, whose confirm leaves the
   PaymentIntent `requires_action` for 3-D Secure) are unknown to it: a PaymentIntent naming them
   would be refused. They are created here at start-up, and again after `DELETE /_config/data`,
   and stored under exactly those ids (so they can also be retrieved).
4. Stripe's declining test cards decline when charged. localstripe declines 4000 0000 0000 0002
   (generic decline), ...9995 (insufficient funds) and the other decline cards only when they are
   *attached to a customer*, and charges them successfully: a PaymentIntent with
   `pm_card_visa_chargeDeclined` would succeed. Here every number in CHARGE_DECLINE_CODES also
   declines when charged (4000 0000 0000 0341 already did), as with Stripe.
5. Card declines look like Stripe's. localstripe answers a declined confirm (or a create with
   confirm=true) with HTTP 402 and `{"error": {"type": "invalid_request_error", "code":
   "card_declined", "charge": "ch_...", "message": "Your card was declined."}}`. Stripe's error is
   a `card_error` with a `decline_code` and the whole PaymentIntent; here the error gets `"type":
   "card_error"`, the card's `"decline_code"` (CHARGE_DECLINE_CODES, else "generic_decline") and
   `"payment_intent": {...}` (the PaymentIntent as GET returns it). The PaymentIntent stays stored
   with status `requires_payment_method` and `last_payment_error` set (the same fields).
   "code" stays "card_declined" for every card (Stripe says expired_card, incorrect_cvc, ... for
   some).
6. Objects have the fields Stripe's typed clients require. async-stripe 1.0 (and other generated
   clients) refuse an object that lacks a required field, and localstripe leaves some out. Added
   when missing: PaymentIntent amount_capturable, amount_received, confirmation_method
   ("automatic"), payment_method_types (["card"]), and `latest_charge` becomes the charge's id as
   in Stripe (the object with expand[]=latest_charge); last_payment_error gets type and
   decline_code. Charge: amount_captured, billing_details, disputed. Event: pending_webhooks (0)
   and request ({"id": null, "idempotency_key": null}).
7. PaymentIntent create takes the parameters of INTENT_EXTRA_PARAMS too. localstripe answers 400
   "Unexpected <name>" to any parameter it does not model, among them the ones a server-side
   confirm with Stripe's current API needs (automatic_payment_methods[enabled]=true with
   [allow_redirects]=never, or allowed_payment_method_types[]=card) and description. They are
   checked for their type, stored and returned as Stripe does (return_url, error_on_requires_action
   and use_stripe_sdk are accepted and dropped); they change nothing else.
8. Refunds stay within the charge. localstripe refunds the whole charge amount again for every
   refund without an amount, and accepts refunds beyond what is left. Here a refund without amount
   takes what is left, one more than what is left gets 400 `amount_too_large`, and one of a fully
   refunded charge gets 400 `charge_already_refunded`. Listing the refunds of a PaymentIntent that
   was never charged gives an empty list (localstripe: HTTP 500).
9. Lists read one kind of object. localstripe lists by scanning every object in the store, and a
   Charge (inside every PaymentIntent answer) lists its refunds that way several times: each
   create or confirm got slower with every payment already made (from ~360 to ~40 payments/s over
   3,200 payments). Here the store also keeps its objects by kind, and lists read only that kind:
   same objects, same order.

10. PaymentIntent create refuses what Stripe refuses, as Stripe does. localstripe answers a
   payment_method it does not know with HTTP 404 `{"error": {"message": "Not Found"}}`; Stripe
   answers 400 with `"code": "resource_missing", "param": "payment_method"` and "No such
   PaymentMethod: '<id>'", and so does this fake. An amount above Stripe's limit (99999999 minor
   units) gets 400 `"code": "amount_too_large", "param": "amount"` (localstripe takes any positive
   amount).

11. Latency and holds, for tests of what happens while a call is in flight (localstripe has no
   such switches). `POST /_config/latency` with `ms=N` makes every /v1 request wait N ms before it
   is handled (`ms=0`: none). `POST /_config/hold` with `request=<regex>` holds every /v1 request
   whose "<METHOD> <path>" matches (for instance `POST /v1/payment_intents/[^/]+/confirm$`) until
   `DELETE /_config/hold` releases them all and stops holding; `GET /_config/hold` answers
   `{"holding": <regex or null>, "held": <requests waiting now>}`. A held request is handled as
   usual once released: it only comes late.

12. 3-D Secure has a test bank, like Stripe's hosted 3DS test page. localstripe leaves a
   PaymentIntent confirmed with a 3-D Secure card (4000 0027 6000 3184, `pm_card_authenticationRequired`,
   and its other numbers) `requires_action` with `next_action: {"type": "use_stripe_sdk",
   "use_stripe_sdk": {"type": "three_d_secure_redirect", "stripe_js": ""}}`, completed only by
   `POST /v1/payment_intents/<id>/_authenticate` with the client secret (what its fake Stripe.js
   calls). Here `stripe_js` is the address of this fake's test-bank page for the intent,
   `<public url>/_test_bank/<id>` (--public-url, default the address it listens on), which the
   shop's order page sends the shopper to when it has no Stripe.js:
   - `GET /_test_bank/<id>?return_url=<url>` shows the amount and two buttons, "Complete" and
     "Fail" (no API key needed: the shopper's browser opens it; it shows no secret);
   - `POST /_test_bank/<id>` with `outcome=complete|fail` and `return_url` authenticates the
     intent as `_authenticate` does — complete: charged, `succeeded`, webhook
     `payment_intent.succeeded`; fail: back to `requires_payment_method` with `last_payment_error`
     `payment_intent_authentication_failure`, and (localstripe sends nothing then) the webhook
     `payment_intent.payment_failed`, as Stripe does — then answers 303 to `return_url` with
     `payment_intent=<id>&redirect_status=succeeded|failed` added, as Stripe redirects after 3DS.
     Only an http(s) `return_url` is followed; otherwise the page says what happened. An intent
     that is not `requires_action` (any more) gets 400 and changes nothing.
   A cancelled `requires_action` intent (the order expired) is `canceled` and the test bank
   refuses it.

Not modelled (localstripe's limits): Idempotency-Key (ignored), list filters other than those
named above (`GET /v1/payment_intents?customer=...` etc. gets 400 "Unexpected ..."), search.

Listens on a loopback address only; --host 0.0.0.0 (or any other) needs --allow-any-host, which is
meant for the docker-compose container only. --port 0 picks a free port (printed at start).
Logs one line per request to stdout. Exits with status 0 on SIGTERM or SIGINT.
"""

import argparse
import asyncio
import html
import ipaddress
import logging
import re
import signal
import sys

from aiohttp import web
from localstripe import resources, server
from localstripe.errors import UserError

# Test PaymentMethod ids that localstripe does not know: id -> (card number, brand). Numbers must
# be 16 digits (localstripe checks); the decline behaviour comes from localstripe's number lists.
TEST_PAYMENT_METHODS = {
    "pm_card_chargeDeclined": ("4000000000000341", "visa"),
    "pm_card_mastercard": ("5555555555554444", "mastercard"),
    # Stripe's 3-D Secure test card, one of localstripe's: confirming leaves the PaymentIntent
    # `requires_action` until the test bank (see 12.) authenticates it.
    "pm_card_authenticationRequired": ("4000002760003184", "visa"),
}

# The largest amount Stripe accepts, in minor units (8 digits).
MAX_AMOUNT = 99999999


# Stripe's declining test card numbers and their decline codes (docs.stripe.com/testing). Every
# one declines when charged; localstripe itself declines most of them only when attaching.
CHARGE_DECLINE_CODES = {
    "4000000000000002": "generic_decline",  # pm_card_visa_chargeDeclined
    "4000000000000341": "generic_decline",  # pm_card_chargeCustomerFail; pm_card_chargeDeclined
    "4000000000009995": "insufficient_funds",
    "4000000000009987": "lost_card",
    "4000000000009979": "stolen_card",
    "4000000000000069": "expired_card",
    "4000000000000127": "incorrect_cvc",
    "4000000000000119": "processing_error",
    "4242424242424241": "incorrect_number",
}


# PaymentIntent create parameters that localstripe rejects and that are accepted here (see 7.):
# name -> kind ("str", "bool", "list" of str, "automatic" for automatic_payment_methods) and
# whether the PaymentIntent object shows it.
INTENT_EXTRA_PARAMS = {
    "description": ("str", True),
    "receipt_email": ("str", True),
    "statement_descriptor": ("str", True),
    "statement_descriptor_suffix": ("str", True),
    "automatic_payment_methods": ("automatic", True),
    "allowed_payment_method_types": ("list", True),
    "excluded_payment_method_types": ("list", True),
    "return_url": ("str", False),
    "error_on_requires_action": ("bool", False),
    "use_stripe_sdk": ("bool", False),
}


def is_loopback(host):
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def disable_persistence():
    """No /tmp/localstripe.pickle: neither written after each request nor read at start."""
    resources.Store.dump_to_disk = lambda self: None
    resources.Store.try_load_from_disk = lambda self: None


def index_the_store_by_kind():
    """Lists read the objects of their kind only, not the whole store (see 9.)."""
    by_kind = {}  # "payment_intent" -> {"payment_intent:pi_...": obj}, in insertion order
    store_class = resources.Store

    def kind(key):
        # Only `kind:id` keys are listed; singletons such as "balance" are stored by kind alone.
        return key.split(":", 1)[0] if ":" in key else None

    def set_item(self, key, value):
        dict.__setitem__(self, key, value)
        if kind(key) is not None:
            by_kind.setdefault(kind(key), {})[key] = value
        self.dump_to_disk()

    def del_item(self, key):
        dict.__delitem__(self, key)
        if kind(key) is not None:
            by_kind.get(kind(key), {}).pop(key, None)
        self.dump_to_disk()

    clear = store_class.clear

    def clear_all(self):
        by_kind.clear()
        clear(self)

    def api_list_all(cls, url, limit=None, starting_after=None, **kwargs):
        if kwargs:
            raise UserError(400, "Unexpected " + ", ".join(kwargs.keys()))
        listed = resources.List(url, limit=limit, starting_after=starting_after)
        listed._list = list(by_kind.get(cls.object, {}).values())
        return listed

    for key, value in resources.store.items():
        if kind(key) is not None:
            by_kind.setdefault(kind(key), {})[key] = value
    store_class.__setitem__ = set_item
    store_class.__delitem__ = del_item
    store_class.clear = clear_all
    resources.StripeObject._api_list_all = classmethod(api_list_all)


def register_test_payment_methods():
    """Creates the TEST_PAYMENT_METHODS and re-keys each under its fixed id."""
    store = resources.store
    for pm_id, (number, brand) in TEST_PAYMENT_METHODS.items():
        pm = resources.PaymentMethod(
            type="card",
            card={"number": number, "exp_month": "12", "exp_year": "2034", "cvc": "123"},
        )
        del store[f"payment_method:{pm.id}"]
        pm.id = pm_id
        pm.card["brand"] = brand
        store[f"payment_method:{pm_id}"] = pm


def keep_test_payment_methods_on_flush():
    """`DELETE /_config/data` (store.clear()) keeps the TEST_PAYMENT_METHODS."""

    def clear(store):
        dict.clear(store)
        register_test_payment_methods()

    resources.Store.clear = clear


def decline_cards_when_charged():
    """Every card of CHARGE_DECLINE_CODES declines when charged, not only when attached."""
    original = resources.PaymentMethod._charging_is_declined

    def charging_is_declined(self):
        return original(self) or getattr(self, "_card_number", None) in CHARGE_DECLINE_CODES

    # Card and Source call PaymentMethod._charging_is_declined(self): they get this one too.
    resources.PaymentMethod._charging_is_declined = charging_is_declined


def card_decline_code(charge):
    try:
        method = resources.PaymentMethod._api_retrieve(charge.payment_method)
    except UserError:
        return "generic_decline"
    return CHARGE_DECLINE_CODES.get(getattr(method, "_card_number", None), "generic_decline")


def stripe_like_card_errors():
    """Card declines as Stripe reports them: a card_error with decline_code and payment_intent."""
    original = resources.Charge._raise_failure

    def raise_failure(charge):
        try:
            original(charge)
        except UserError as err:
            error = err.body["error"]
            if error.get("code") == "card_declined":
                error["type"] = "card_error"
                error["decline_code"] = card_decline_code(charge)
                if charge.payment_intent:
                    intent = resources.PaymentIntent._api_retrieve(charge.payment_intent)
                    error["payment_intent"] = intent._export()
            raise

    resources.Charge._raise_failure = raise_failure


def checked_param(name, kind, value):
    """The value of an INTENT_EXTRA_PARAMS parameter in Stripe's form, or UserError 400."""
    if kind == "str" and isinstance(value, str):
        return value
    if kind == "bool":
        value = resources.try_convert_to_bool(value)
        if isinstance(value, bool):
            return value
    if kind == "list" and isinstance(value, list) and all(isinstance(v, str) for v in value):
        return value
    automatic_keys = {"enabled", "allow_redirects"}
    if kind == "automatic" and isinstance(value, dict) and set(value) <= automatic_keys:
        enabled = resources.try_convert_to_bool(value.get("enabled"))
        redirects = value.get("allow_redirects")
        if isinstance(enabled, bool) and redirects in (None, "always", "never"):
            return {"enabled": enabled, "allow_redirects": redirects}
    raise UserError(400, f"Invalid {name}", {"param": name})


def accept_intent_extra_params():
    """PaymentIntent(...) takes INTENT_EXTRA_PARAMS as well (see 7.)."""
    original = resources.PaymentIntent.__init__

    def init(self, **data):
        extra = {}
        for name, (kind, shown) in INTENT_EXTRA_PARAMS.items():
            if name in data:
                value = checked_param(name, kind, data.pop(name))
                if shown:
                    extra[name] = value
        original(self, **data)  # stores the object: every check must come before
        for name, (_, shown) in INTENT_EXTRA_PARAMS.items():
            if shown:
                setattr(self, name, extra.get(name))

    resources.PaymentIntent.__init__ = init


def stripe_like_intent_refusals():
    """PaymentIntent create refuses an unknown payment method and a too large amount (see 10.)."""
    original = resources.PaymentIntent.__init__

    def init(self, **data):
        amount = resources.try_convert_to_int(data.get("amount"))
        if isinstance(amount, int) and amount > MAX_AMOUNT:
            raise UserError(400, f"Amount must be no more than {MAX_AMOUNT}",
                            {"code": "amount_too_large", "param": "amount"})
        try:
            original(self, **data)  # raises before storing anything
        except UserError as err:
            method = data.get("payment_method")
            # Without a customer, a 404 can only be the payment method's lookup.
            if err.code == 404 and isinstance(method, str) and data.get("customer") is None:
                raise UserError(400, f"No such PaymentMethod: '{method}'",
                                {"code": "resource_missing", "param": "payment_method"})
            raise

    resources.PaymentIntent.__init__ = init


def refunds_within_the_charge():
    """Refund amounts default to, and are limited by, what is left of the charge (see 8.)."""
    create = resources.Refund._api_create.__func__
    list_all = resources.Refund._api_list_all.__func__

    def refunded_charge(data):
        try:
            if isinstance(data.get("charge"), str):
                return resources.Charge._api_retrieve(data["charge"])
            if isinstance(data.get("payment_intent"), str):
                return resources.PaymentIntent._api_retrieve(data["payment_intent"]).latest_charge
        except UserError:
            pass
        return None  # localstripe's own checks answer

    def api_create(cls, **data):
        charge = refunded_charge(data)
        if charge is not None and charge.status == "succeeded":
            left = charge.amount - charge.amount_refunded
            amount = resources.try_convert_to_int(data.get("amount"))
            if left <= 0:
                raise UserError(400, f"Charge {charge.id} has already been refunded.",
                                {"code": "charge_already_refunded"})
            if amount is None:
                data["amount"] = left
            elif isinstance(amount, int) and amount > left:
                raise UserError(
                    400,
                    f"Refund amount ({amount}) is greater than unrefunded amount on charge"
                    f" ({left})",
                    {"code": "amount_too_large", "param": "amount"})
        return create(cls, **data)

    def api_list_all(cls, url, charge=None, payment_intent=None, limit=None, starting_after=None):
        if charge is None and isinstance(payment_intent, str) and payment_intent.startswith("pi_"):
            if resources.PaymentIntent._api_retrieve(payment_intent).latest_charge is None:
                return resources.List(url, limit=limit, starting_after=starting_after)
        return list_all(cls, url, charge=charge, payment_intent=payment_intent, limit=limit,
                        starting_after=starting_after)

    resources.Refund._api_create = classmethod(api_create)
    resources.Refund._api_list_all = classmethod(api_list_all)


def patch_export(cls, fill):
    """Wraps cls._export so that fill(obj, exported, expand) completes what it returns."""
    original = cls._export

    def export(self, expand=None):
        exported = original(self, expand=expand)
        fill(self, exported, expand or [])
        return exported

    cls._export = export


def fill_payment_intent(intent, out, expand):
    status = out.get("status")
    out.setdefault("amount_capturable", intent.amount if status == "requires_capture" else 0)
    out.setdefault("amount_received", intent.amount if status == "succeeded" else 0)
    out.setdefault("confirmation_method", "automatic")
    out.setdefault("payment_method_types", out.get("allowed_payment_method_types") or ["card"])
    if isinstance(out.get("latest_charge"), dict) and "latest_charge" not in expand:
        out["latest_charge"] = out["latest_charge"]["id"]
    error = out.get("last_payment_error")
    if isinstance(error, dict) and "type" not in error:
        if error.get("code") == "card_declined" and intent.latest_charge is not None:
            error["type"] = "card_error"
            error["decline_code"] = card_decline_code(intent.latest_charge)
        else:
            error["type"] = "invalid_request_error"


def fill_charge(charge, out, expand):
    captured = out.get("captured") and out.get("status") == "succeeded"
    out.setdefault("amount_captured", charge.amount if captured else 0)
    out.setdefault("billing_details", {"address": None, "email": None, "name": None, "phone": None})
    out.setdefault("disputed", False)


def fill_event(event, out, expand):
    out.setdefault("pending_webhooks", 0)
    out.setdefault("request", {"id": None, "idempotency_key": None})


def stripe_shaped_objects():
    """The required fields typed Stripe clients expect (see 6. above)."""
    patch_export(resources.PaymentIntent, fill_payment_intent)
    patch_export(resources.Charge, fill_charge)
    patch_export(resources.Event, fill_event)


class Switches:
    """The latency and the hold of 11., one set per process."""

    def __init__(self):
        self.latency_ms = 0
        self.holding = None  # compiled regex, or None
        self.released = asyncio.Event()
        self.held = 0

    def hold(self, pattern):
        if self.holding is None:
            self.released = asyncio.Event()
        self.holding = pattern

    def release(self):
        self.holding = None
        self.released.set()


switches = Switches()


@web.middleware
async def latency_and_holds(request, handler):
    """Delays and holds /v1 requests as the switches say (see 11.)."""
    if request.path.startswith("/v1/"):
        if switches.latency_ms > 0:
            await asyncio.sleep(switches.latency_ms / 1000)
        if switches.holding is not None and switches.holding.search(
                f"{request.method} {request.path}"):
            released = switches.released
            switches.held += 1
            try:
                await released.wait()
            finally:
                switches.held -= 1
    return await handler(request)


async def config_latency(request):
    data = await request.post()
    try:
        ms = int(data.get("ms", ""))
    except ValueError:
        ms = -1
    if ms < 0:
        raise UserError(400, "ms must be a whole number of milliseconds, 0 or more")
    switches.latency_ms = ms
    return web.json_response({"latency_ms": ms})


async def config_hold(request):
    data = await request.post()
    try:
        pattern = re.compile(data.get("request", ""))
    except re.error:
        raise UserError(400, "request must be a regular expression")
    if not pattern.pattern:
        raise UserError(400, "request must be a regular expression")
    switches.hold(pattern)
    return await hold_state(request)


async def hold_state(request):
    holding = switches.holding.pattern if switches.holding is not None else None
    return web.json_response({"holding": holding, "held": switches.held})


async def release_holds(request):
    switches.release()
    return await hold_state(request)


def latency_and_hold_switches():
    """The /_config routes and the middleware of 11."""
    server.app.middlewares.append(latency_and_holds)
    server.app.router.add_post("/_config/latency", config_latency)
    server.app.router.add_post("/_config/hold", config_hold)
    server.app.router.add_get("/_config/hold", hold_state)
    server.app.router.add_delete("/_config/hold", release_holds)


class TestBank:
    """The 3-D Secure test bank of 12.: its public address, set once listening."""

    public_url = ""


def test_bank_url(intent_id):
    return f"{TestBank.public_url}/_test_bank/{intent_id}"


def three_d_secure_goes_to_the_test_bank():
    """A PaymentIntent that needs 3-D Secure names the test bank's page (see 12.)."""
    original = resources.PaymentIntent._confirm

    def confirm(self, on_failure_now):
        original(self, on_failure_now)
        if self.next_action:
            self.next_action = {
                "type": "use_stripe_sdk",
                "use_stripe_sdk": {"type": "three_d_secure_redirect",
                                   "stripe_js": test_bank_url(self.id)},
            }

    resources.PaymentIntent._confirm = confirm


def money(intent):
    return f"{intent.amount / 100:.2f} {intent.currency.upper()}"


def followable(url):
    return isinstance(url, str) and re.match(r"^https?://[^\s]+$", url) is not None


def test_bank_page(intent, return_url, message=None):
    esc = html.escape
    if message is None and intent.status == "requires_action":
        body = (
            f"<p>Your bank asks you to confirm the payment of <strong>{esc(money(intent))}</strong>"
            f" ({esc(intent.id)}).</p>"
            "<form method='post'>"
            f"<input type='hidden' name='return_url' value='{esc(return_url or '')}'>"
            "<button name='outcome' value='complete'>Complete</button> "
            "<button name='outcome' value='fail'>Fail</button>"
            "</form>"
        )
    else:
        body = f"<p>{esc(message or f'This payment is {intent.status}: nothing to confirm.')}</p>"
        if followable(return_url):
            body += f"<p><a href='{esc(return_url)}'>Back to the shop</a></p>"
    return web.Response(
        content_type="text/html",
        text=("<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>"
              "<title>Test bank: 3-D Secure</title></head><body>"
              "<h1>Test bank: 3-D Secure</h1>"
              "<p><em>The local fake Stripe's stand-in for a card issuer's page. No money moves."
              "</em></p>" + body + "</body></html>"),
    )


def intent_of(request):
    intent_id = request.match_info["id"]
    if not intent_id.startswith("pi_"):
        raise UserError(404, "Not Found")
    return resources.PaymentIntent._api_retrieve(intent_id)


async def test_bank_show(request):
    intent = intent_of(request)
    return test_bank_page(intent, request.query.get("return_url"))


async def test_bank_answer(request):
    intent = intent_of(request)
    data = await request.post()
    outcome = data.get("outcome")
    return_url = data.get("return_url")
    if outcome not in ("complete", "fail"):
        raise UserError(400, "outcome must be complete or fail")
    if intent.status != "requires_action":
        raise UserError(400, f"The PaymentIntent is {intent.status}, not requires_action")
    success = outcome == "complete"
    resources.PaymentIntent._api_authenticate(
        intent.id, client_secret=intent.client_secret, success=success)
    if not success:
        # Stripe tells a failed authentication; localstripe does not.
        resources.schedule_webhook(resources.Event("payment_intent.payment_failed", intent))
    if not followable(return_url):
        return test_bank_page(intent, None, f"Authentication {'completed' if success else 'failed'}.")
    separator = "&" if "?" in return_url else "?"
    status = "succeeded" if success else "failed"
    raise web.HTTPSeeOther(
        f"{return_url}{separator}payment_intent={intent.id}&redirect_status={status}")


def test_bank_routes():
    """The test bank's pages (12.), open without an API key as a shopper's browser opens them."""
    auth = server.auth_middleware

    @web.middleware
    async def auth_but_the_test_bank(request, handler):
        if request.path.startswith("/_test_bank/"):
            return await handler(request)
        return await auth(request, handler)

    middlewares = server.app.middlewares
    middlewares[middlewares.index(auth)] = auth_but_the_test_bank
    server.app.router.add_get("/_test_bank/{id}", test_bank_show)
    server.app.router.add_post("/_test_bank/{id}", test_bank_answer)


async def serve(args):
    runner = web.AppRunner(server.app, access_log=logging.getLogger("aiohttp.access"))
    await runner.setup()
    site = web.TCPSite(runner, host=args.host, port=args.port)
    await site.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    addresses = ", ".join(
        f"[{a[0]}]:{a[1]}" if ":" in a[0] else f"{a[0]}:{a[1]}" for a in runner.addresses
    )
    first = runner.addresses[0]
    bound = f"[{first[0]}]:{first[1]}" if ":" in first[0] else f"{first[0]}:{first[1]}"
    TestBank.public_url = (args.public_url or f"http://{bound}").rstrip("/")
    print(f"stripe-fake: listening on {addresses}", flush=True)
    await stop.wait()
    await runner.cleanup()
    print("stripe-fake: stopped", flush=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (loopback only)")
    parser.add_argument("--port", type=int, default=8420, help="port to listen on (0: any free one)")
    parser.add_argument(
        "--public-url",
        help="the address browsers reach this fake at, for its 3-D Secure test bank's links "
             "(default: http://<the address it listens on>)",
    )
    parser.add_argument(
        "--allow-any-host",
        action="store_true",
        help="allow a non-loopback --host such as 0.0.0.0 (inside a container only)",
    )
    args = parser.parse_args()
    if not is_loopback(args.host) and not args.allow_any_host:
        parser.error(f"--host {args.host} is not a loopback address (add --allow-any-host to allow it)")
    if not 0 <= args.port <= 65535:
        parser.error(f"--port {args.port} is out of range")
    access = logging.getLogger("aiohttp.access")
    access.setLevel(logging.INFO)
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(logging.Formatter("stripe-fake: %(message)s"))
    access.addHandler(handler)
    disable_persistence()
    keep_test_payment_methods_on_flush()
    index_the_store_by_kind()
    register_test_payment_methods()
    decline_cards_when_charged()
    stripe_like_card_errors()
    stripe_shaped_objects()
    accept_intent_extra_params()
    stripe_like_intent_refusals()
    refunds_within_the_charge()
    latency_and_hold_switches()
    three_d_secure_goes_to_the_test_bank()
    test_bank_routes()
    try:
        asyncio.run(serve(args))
    except OSError as err:
        print(f"stripe-fake: error: {err}", file=sys.stderr, flush=True)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
