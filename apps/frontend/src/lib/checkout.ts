import { ApiError, NETWORK_ERROR, type CartItem } from './api';

export type FieldKey = 'name' | 'email' | 'line1' | 'city' | 'postal_code' | 'country' | 'payment_method';

export interface CheckoutForm {
  name: string;
  email: string;
  line1: string;
  city: string;
  postal_code: string;
  country: string;
  payment_method: string;
}

export const FIELD_LABELS: Record<FieldKey, string> = {
  name: 'Full name',
  email: 'E-mail',
  line1: 'Address',
  city: 'City',
  postal_code: 'Postal code',
  country: 'Country',
  payment_method: 'Payment',
};

const MISSING: Record<FieldKey, string> = {
  name: 'Please enter your name.',
  email: 'Please enter your e-mail address.',
  line1: 'Please enter your street address.',
  city: 'Please enter your city.',
  postal_code: 'Please enter your postal code.',
  country: 'Please choose your country.',
  payment_method: 'Please choose how you want to pay.',
};

export const BAD_EMAIL = 'That e-mail address does not look right. It should look like name@example.com.';
export const BAD_COUNTRY = 'Please choose a country from the list.';
export const TOO_LONG = 'This is too long: 200 characters at most.';
export const EMPTY_ORDER = 'Your cart is empty. Add something from the shop before checking out.';
export const GENERIC = 'Something went wrong while placing your order. Please try again.';
export const NETWORK = 'We could not reach the shop. Check your connection and try again.';
export const SERVER = 'Something went wrong on our side. Please try again in a moment.';

export const MAX_LENGTH = 200;
const EMAIL = /^[^\s@]+@[^\s@]+\.[^\s@.]{2,}$/;

export type FieldErrors = Partial<Record<FieldKey, string>>;

/** Checks the form as the server would, so that most mistakes never leave the page. With
 * `paymentElement`, the payment is Stripe's Payment Element's to check, not the form's. */
export function validate(form: CheckoutForm, { paymentElement = false } = {}): FieldErrors {
  const errors: FieldErrors = {};
  for (const key of Object.keys(MISSING) as FieldKey[]) {
    if (key === 'payment_method' && paymentElement) continue;
    const value = form[key].trim();
    if (!value) errors[key] = MISSING[key];
    else if (value.length > MAX_LENGTH) errors[key] = TOO_LONG;
  }
  if (!errors.email && !EMAIL.test(form.email.trim())) errors.email = BAD_EMAIL;
  if (!errors.country && !/^[A-Z]{2}$/.test(form.country)) errors.country = BAD_COUNTRY;
  return errors;
}

/** Where an API error is shown on the checkout page, and in which words. */
export interface MappedError {
  fields: FieldErrors;
  /** Per cart line, by product id. */
  lines: Record<number, string>;
  /** A sentence for the whole form. */
  form: string | null;
}

const FIELD_PATHS: Record<string, FieldKey> = {
  'customer.name': 'name',
  'customer.email': 'email',
  'customer.address.line1': 'line1',
  'customer.address.city': 'city',
  'customer.address.postal_code': 'postal_code',
  'customer.address.country': 'country',
  payment_method: 'payment_method',
};

function fieldOf(path: string | undefined): FieldKey | null {
  if (!path) return null;
  return FIELD_PATHS[path] ?? null;
}

/** `items.7.quantity` / `items.7` → 7. */
function productOf(path: string | undefined): number | null {
  const m = path?.match(/^items\.(\d+)/);
  return m ? Number(m[1]) : null;
}

/** Turns an API error into plain sentences placed next to what they concern. */
export function mapCheckoutError(error: unknown, items: CartItem[] = []): MappedError {
  const out: MappedError = { fields: {}, lines: {}, form: null };
  if (!(error instanceof ApiError)) {
    out.form = GENERIC;
    return out;
  }
  const field = fieldOf(error.field);
  const productId = error.productId ?? productOf(error.field);
  const item = productId != null ? items.find((i) => i.product_id === productId) : undefined;
  switch (error.code) {
    case 'missing_field':
      if (field) out.fields[field] = MISSING[field];
      else if (error.field === 'items') out.form = EMPTY_ORDER;
      else out.form = 'Some required information is missing. Please check the form.';
      break;
    case 'field_too_long':
      if (field) out.fields[field] = TOO_LONG;
      else out.form = 'One of the fields is too long (200 characters at most).';
      break;
    case 'invalid_email':
      out.fields.email = BAD_EMAIL;
      break;
    case 'invalid_country':
      out.fields.country = BAD_COUNTRY;
      break;
    case 'invalid_payment_method':
      out.fields.payment_method = 'That payment method cannot be used. Please choose another one.';
      break;
    case 'card_data_not_accepted':
      out.fields.payment_method = 'Card details are never sent to the shop. Please enter your card in the payment form.';
      break;
    case 'test_payment_method_in_live_mode':
      out.fields.payment_method = 'Test payment methods do not work in this shop. Please enter your card in the payment form.';
      break;
    case 'out_of_stock': {
      const name = item?.name ?? 'one of the products';
      const left = parseLeft(error.message);
      const sentence =
        left === 0
          ? `Sorry, ${name} is sold out. Please remove it from your cart.`
          : left != null
            ? `Sorry, we only have ${left} of ${name} left. Please lower the quantity in your cart.`
            : `Sorry, we do not have enough of ${name} in stock. Please lower the quantity in your cart.`;
      if (productId != null && item) out.lines[productId] = sentence;
      out.form = 'Some items in your cart are no longer in stock in the quantity you asked for. Nothing was ordered.';
      if (!item) out.form = sentence + ' Nothing was ordered.';
      break;
    }
    case 'invalid_quantity':
      if (productId != null && item) out.lines[productId] = 'Quantities must be between 1 and 100.';
      else out.form = 'Quantities must be between 1 and 100.';
      break;
    case 'unknown_product':
      if (productId != null && item) out.lines[productId] = 'This product is no longer available. Please remove it from your cart.';
      else out.form = 'A product in your cart is no longer available. Please remove it from your cart.';
      break;
    case 'empty_order':
      out.form = EMPTY_ORDER;
      break;
    case 'too_many_lines':
      out.form = 'Your cart has too many different products (50 at most).';
      break;
    case 'duplicate_product':
      out.form = 'A product appears twice in your cart. Please reload the page and try again.';
      break;
    case 'mixed_currency':
      out.form = 'Your cart mixes products priced in different currencies. Please order them separately.';
      break;
    case 'quote_changed':
      out.form = 'The total changed while you were on this page (a price, the shipping or the tax). Nothing was ordered: please check the new total and place the order again.';
      break;
    case 'idempotency_key_reused':
      out.form = 'Your order details changed since your last attempt. Please press "Place order" again.';
      break;
    case 'idempotency_key_in_use':
      out.form = 'Your order is still being placed. Please wait a moment.';
      break;
    case NETWORK_ERROR:
      out.form = NETWORK;
      break;
    default:
      out.form = error.status >= 500 ? SERVER : GENERIC;
  }
  return out;
}

/** "only 2 of Folding pocket knife left" → 2. */
function parseLeft(message: string): number | null {
  const m = message.match(/only (\d+) /i);
  return m ? Number(m[1]) : null;
}

/** ISO 3166-1 alpha-2 codes offered in the country list. */
export const COUNTRY_CODES = (
  'AD AE AF AG AI AL AM AO AQ AR AS AT AU AW AX AZ BA BB BD BE BF BG BH BI BJ BL BM BN BO BQ BR BS BT BV BW BY BZ ' +
  'CA CC CD CF CG CH CI CK CL CM CN CO CR CU CV CW CX CY CZ DE DJ DK DM DO DZ EC EE EG EH ER ES ET FI FJ FK FM FO FR ' +
  'GA GB GD GE GF GG GH GI GL GM GN GP GQ GR GS GT GU GW GY HK HM HN HR HT HU ID IE IL IM IN IO IQ IR IS IT JE JM JO JP ' +
  'KE KG KH KI KM KN KP KR KW KY KZ LA LB LC LI LK LR LS LT LU LV LY MA MC MD ME MF MG MH MK ML MM MN MO MP MQ MR MS MT ' +
  'MU MV MW MX MY MZ NA NC NE NF NG NI NL NO NP NR NU NZ OM PA PE PF PG PH PK PL PM PN PR PS PT PW PY QA RE RO RS RU RW ' +
  'SA SB SC SD SE SG SH SI SJ SK SL SM SN SO SR SS ST SV SX SY SZ TC TD TF TG TH TJ TK TL TM TN TO TR TT TV TW TZ UA UG ' +
  'UM US UY UZ VA VC VE VG VI VN VU WF WS YE YT ZA ZM ZW'
).split(' ');

let regionNames: Intl.DisplayNames | null = null;
try {
  regionNames = new Intl.DisplayNames(['en'], { type: 'region' });
} catch {
  regionNames = null;
}

/** The countries for the select, sorted by their English name. */
export const COUNTRIES: { code: string; name: string }[] = COUNTRY_CODES.map((code) => {
  let name = code;
  try {
    name = regionNames?.of(code) ?? code;
  } catch {
    name = code;
  }
  return { code, name };
}).sort((a, b) => a.name.localeCompare(b.name, 'en'));

export const PAYMENT_CHOICES = [
  { id: 'pm_card_visa', label: 'Visa — succeeds', hint: 'Test card that is charged successfully.' },
  { id: 'pm_card_chargeDeclined', label: 'Visa — declined', hint: 'Test card that the bank declines.' },
  { id: 'pm_card_authenticationRequired', label: 'Visa — 3-D Secure', hint: 'Test card (4000 0027 6000 3184) whose bank asks you to confirm the payment.' },
];
