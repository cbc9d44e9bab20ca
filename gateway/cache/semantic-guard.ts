// The semantic cache's meaning guard: given two near-identical questions, a reason to believe
// they ask different things, or nothing. Embeddings are blind to exactly the words that flip a
// question's meaning (the default glove-sif-100d is a bag of words: it cannot see word order,
// and SIF weighting gives frequent words such as "not", "before" or "how" almost no weight), so
// a cosine threshold alone is never safe; these rules look at the words themselves. Pure.
// ================================================================== the guard

/** Returns why two texts likely differ in meaning, or undefined when no rule objects. */
export type GuardFn = (a: string, b: string) => string | undefined;

interface TextFeatures {
  /** Lowercased word tokens split at anything not a letter or digit ("lru-cache" → lru, cache). */
  readonly words: readonly string[];
  /** Every run of 1..4 consecutive words glued together, so "built in" can match "built-in". */
  readonly spans: ReadonlySet<string>;
  readonly negations: number;
  /** Sorted numbers, digits and number words alike ("two" → "2", "v10" → "10"). */
  readonly numbers: readonly string[];
  /** Identifiers, proper names and quoted strings, normalized for matching against spans. */
  readonly salient: readonly string[];
  /** Light stems of the words, for the reversal-prefix rule. */
  readonly stems: ReadonlySet<string>;
}

interface GuardRule {
  readonly name: string;
  /** A reason when the pair differs in the way this rule looks for. */
  readonly check: (a: TextFeatures, b: TextFeatures) => string | undefined;
}

// Negation cues. Frequent, so SIF all but erases them from the embedding: "How do I cache
// responses with a TTL?" and "… without a TTL?" have a cosine of 0.97. Counted, not just
// detected, so "without" and "with no" agree.
const NEGATION_WORDS: ReadonlySet<string> = new Set([
  'not', 'no', 'never', 'without', 'none', 'nor', 'neither', 'cannot', 'nothing', 'nobody', 'nowhere',
  'except', 'excluding', 'unless', 'non',
  'dont', 'doesnt', 'didnt', 'isnt', 'arent', 'wasnt', 'werent', 'cant', 'couldnt', 'shouldnt', 'wouldnt',
  'wont', 'hasnt', 'havent', 'hadnt', 'mustnt',
]);

const NUMBER_WORDS: Readonly<Record<string, string>> = {
  // "one" (and "single") is left out on purpose: it is mostly a pronoun or "a" ("which one",
  // "one line at a time"), and "one" vs "two" is still caught: "two" appears on one side only.
  zero: '0', two: '2', three: '3', four: '4', five: '5', six: '6', seven: '7', eight: '8', nine: '9',
  ten: '10', eleven: '11', twelve: '12', thirteen: '13', fourteen: '14', fifteen: '15', sixteen: '16',
  seventeen: '17', eighteen: '18', nineteen: '19', twenty: '20', thirty: '30', forty: '40', fifty: '50',
  sixty: '60', seventy: '70', eighty: '80', ninety: '90', hundred: '100', thousand: '1000',
  million: '1000000', billion: '1000000000', twice: '2', thrice: '3', dozen: '12',
};

/** Regular inflections of a verb: enable → enable, enables, enabled, enabling. */
function verb(base: string, doubled = false): string[] {
  if (base.endsWith('e')) return [base, `${base}s`, `${base}d`, `${base.slice(0, -1)}ing`];
  const last = base.slice(-1);
  const stem = doubled ? base + last : base;
  return [base, base.endsWith('s') || base.endsWith('h') ? `${base}es` : `${base}s`, `${stem}ed`, `${stem}ing`];
}

/**
 * Words with an opposite. Each group has two sides; a side lists synonyms, so "raise" and
 * "increase" agree while "raise" and "reduce" do not. Opposites share their context, so
 * embeddings put them close together ("increase the heap size" vs "decrease the heap size").
 * Multi-word entries ("turn on") match consecutive words.
 */
const OPPOSITES: readonly (readonly [string, readonly string[], readonly string[]])[] = [
  ['before/after', ['before', 'earlier', 'prior'], ['after', 'later', 'afterwards']],
  [
    'more/less',
    ['more', 'greater', 'higher', 'larger', 'bigger', 'longer', 'above', ...verb('increase'), ...verb('raise'), ...verb('grow'), 'grew', 'grown', ...verb('expand'), ...verb('bump')],
    ['less', 'fewer', 'lower', 'lowered', 'lowering', 'smaller', 'shorter', 'below', ...verb('decrease'), ...verb('reduce'), ...verb('shrink'), 'shrank', 'shrunk'],
  ],
  ['max/min', ['max', 'maximum', 'most', 'largest', 'biggest', 'highest', 'longest'], ['min', 'minimum', 'least', 'smallest', 'lowest', 'shortest']],
  ['enable/disable', [...verb('enable'), ...verb('activate'), 'turn on', 'turned on', 'switch on'], [...verb('disable'), ...verb('deactivate'), 'off']],
  ['add/remove', [...verb('add'), ...verb('insert'), ...verb('append')], [...verb('remove'), ...verb('delete'), ...verb('drop', true), ...verb('erase'), ...verb('evict')]],
  ['first/last', ['first', 'earliest', 'oldest', 'initial'], ['last', 'latest', 'newest', 'final']],
  ['start/stop', [...verb('start'), ...verb('begin'), 'began', 'begun', ...verb('launch')], [...verb('stop', true), ...verb('halt'), ...verb('terminate')]],
  ['pause/resume', verb('pause'), verb('resume')],
  ['open/close', verb('open'), verb('close')],
  ['read/write', ['read', 'reads', 'reading', 'readable'], ['write', 'writes', 'wrote', 'written', 'writing', 'writable']],
  ['get/set', ['get', 'gets', 'getting', 'getter'], ['set', 'sets', 'setting', 'setter']],
  ['load/save', verb('load'), [...verb('save'), ...verb('persist')]],
  ['import/export', verb('import'), verb('export')],
  ['encode/decode', [...verb('encode'), ...verb('encrypt')], [...verb('decode'), ...verb('decrypt')]],
  ['upload/download', verb('upload'), verb('download')],
  ['push/pull', verb('push'), verb('pull')],
  ['upgrade/downgrade', verb('upgrade'), verb('downgrade')],
  ['request/response', ['request', 'requests', 'req'], ['response', 'responses', 'res', 'reply', 'replies']],
  ['client/server', ['client', 'clients', 'client-side'], ['server', 'servers', 'server-side']],
  ['input/output', ['input', 'inputs', 'stdin'], ['output', 'outputs', 'stdout', 'stderr']],
  ['ascending/descending', ['ascending', 'asc'], ['descending', 'desc']],
  ['include/exclude', verb('include'), [...verb('exclude'), ...verb('omit', true)]],
  ['accept/reject', verb('accept'), verb('reject')],
  ['show/hide', [...verb('show'), 'shown'], [...verb('hide'), 'hidden']],
  ['sync/async', ['sync', 'synchronous', 'synchronously'], ['async', 'asynchronous', 'asynchronously']],
  ['local/remote', ['local', 'locally'], ['remote', 'remotely']],
  ['public/private', ['public'], ['private']],
  ['true/false', ['true'], ['false']],
  ['required/optional', ['required', 'mandatory'], ['optional']],
  ['development/production', ['development', 'dev'], ['production', 'prod']],
  ['hit/miss', ['hit', 'hits'], ['miss', 'misses', 'missed']],
  ['up/down', ['up'], ['down']],
  ['head/tail', ['head', 'top', 'leading', 'prefix'], ['tail', 'bottom', 'trailing', 'suffix']],
];

/** Prefixes that reverse a word: subscribe/unsubscribe, serialize/deserialize, valid/invalid. */
const REVERSAL_PREFIXES: readonly string[] = ['un', 'de', 'dis', 'non', 'in'];
/** Bases shorter than this are left alone: "un"+"it" is not a reversal of "it". */
const REVERSAL_MIN_BASE = 4;

/**
 * Prepositions whose object has a role: "convert JSON to YAML" and "convert YAML to JSON" are
 * the same bag of words, so a bag-of-words embedding scores them 1.0. Only a swap counts (each
 * side's object appears before the preposition on the other side), so rewording the object or
 * moving a whole phrase ("In Node, how do I …") does not.
 */
const ROLE_PREPOSITIONS: Readonly<Record<string, string>> = {
  // Not "vs", "and", "or": "pino vs winston" asks the same as "winston vs pino".
  to: 'to', into: 'to', onto: 'to', toward: 'to', towards: 'to', from: 'from', than: 'than', over: 'over',
};
/** Skipped when looking for a preposition's object. */
const DETERMINERS: ReadonlySet<string> = new Set(['a', 'an', 'the', 'my', 'your', 'its', 'our', 'their', 'this', 'that', 'these', 'those', 'some', 'any', 'each', 'every']);

/**
 * Question words with distinct intents. SIF weights them near zero, yet "how does X evict" and
 * "why does X evict" ask for different answers. Only a clash counts ("how" vs "why"); a
 * question with no such word ("What's the best way to…") agrees with any.
 */
const INTENT_WORDS: ReadonlySet<string> = new Set(['how', 'why', 'when', 'where', 'who']);

/**
 * Function words: swapping one of these ("in" → "for", "do" → "can") rewords a question
 * without changing what it is about, so the single-word-swap rule ignores them.
 */
const FUNCTION_WORDS: ReadonlySet<string> = new Set([
  'a', 'an', 'the', 'in', 'on', 'for', 'with', 'to', 'of', 'from', 'by', 'at', 'into', 'inside', 'within', 'using', 'via',
  'do', 'does', 'did', 'can', 'could', 'should', 'would', 'will', 'may', 'might', 'must', 'shall',
  'i', 'you', 'we', 'they', 'he', 'she', 'it', 'me', 'my', 'your', 'our', 'their', 'its', 'one',
  'is', 'are', 'was', 'were', 'be', 'been', 'being', 'am', 'have', 'has', 'had',
  'how', 'what', 'which', 'this', 'that', 'these', 'those', 'and', 'or', 'so', 'if', 'as', 'there', 'here',
  'some', 'any', 'all', 'every', 'each', 'just', 'also', 'please', 'way', 'ways', 's',
]);

/** Words that look like identifiers by shape but are ordinary English abbreviations. */
const NOT_IDENTIFIERS: ReadonlySet<string> = new Set(['e.g', 'i.e', 'etc', 'vs', 'i', "i'm", "i've", "i'd", "i'll"]);

function spanKey(words: readonly string[]): string {
  return words.join('');
}

/** Lowercase, no separators, no possessive: "Node.js" → "node", "lru-cache" → "lrucache". */
function normalizeSalient(text: string): string {
  const runs = text
    .toLowerCase()
    .replace(/['’]s$/u, '')
    .replace(/\.js$/u, '')
    .match(/[\p{L}\p{N}]+/gu);
  return (runs ?? []).map(normalizeWord).join('');
}

/** Digit runs lose leading zeros ("draft-07" is draft 7), the same way on both sides. */
function normalizeWord(word: string): string {
  return /^\d+$/u.test(word) ? word.replace(/^0+(?=\d)/u, '') : word;
}

/** Crude stemming, enough to line up "unsubscribed" with "subscribe". */
function stem(word: string): string {
  const stemmed = word.replace(/(ing|ed|es|e|(?<!s)s)$/u, '');
  return stemmed.length >= 3 ? stemmed : word;
}

function extractNumbers(text: string, words: readonly string[]): string[] {
  const numbers: string[] = [];
  // Thousands separators go first so "1,000" is one number, not "1" and "000".
  const plain = text.replace(/(\d),(?=\d{3}(?!\d))/gu, '$1');
  for (const match of plain.matchAll(/\d+(?:\.\d+)*/gu)) {
    // Leading zeros carry no meaning ("draft-07" is draft 7); trailing ".0" does (semver), kept.
    numbers.push(match[0].replace(/^0+(?=\d)/u, ''));
  }
  for (const word of words) {
    const value = NUMBER_WORDS[word];
    if (value !== undefined) numbers.push(value);
  }
  return numbers.sort();
}

function extractSalient(text: string): string[] {
  const salient: string[] = [];
  // Quoted and backticked strings: error messages, option names, literal values.
  const quoted = /`([^`]+)`|"([^"]+)"|“([^”]+)”|‘([^’]+)’|(?<![\p{L}\p{N}])'([^']+)'(?![\p{L}\p{N}])/gu;
  for (const match of text.matchAll(quoted)) {
    const inner = match.slice(1).find((group) => group !== undefined) ?? '';
    const normalized = normalizeSalient(inner);
    if (normalized !== '') salient.push(normalized);
  }
  const rawTokens = text.split(/\s+/u).filter((token) => token !== '');
  let sentenceStart = true;
  for (const raw of rawTokens) {
    const token = raw.replace(/^[^\p{L}\p{N}_`'"]+|[^\p{L}\p{N}_]+$/gu, '').replace(/^[`'"“‘]+/u, '');
    const startsSentence = sentenceStart;
    // A capital after ".", "?", "!", ":" or a dash is sentence case, not a name.
    sentenceStart = /[.?!:;—–]$/u.test(raw) || raw === '-' || raw === '—' || raw === '–';
    if (token === '' || NOT_IDENTIFIERS.has(token.toLowerCase())) continue;
    if (!/\p{L}/u.test(token)) continue;
    const identifier =
      /\p{Ll}\p{Lu}/u.test(token) || // camelCase, TypeScript, maxSize
      /_/u.test(token) || // snake_case, NODE_ENV
      /[\p{L}\p{N}]\.[\p{L}]/u.test(token) || // Node.js, fs.readFile
      /\p{L}-[\p{L}\p{N}]|[\p{N}]-\p{L}/u.test(token) || // lru-cache, glove-sif-100d
      /^\p{Lu}[\p{Lu}\p{N}]+s?$/u.test(token); // acronyms and codes: TTL, JSON, ECONNRESET, URLs
    const properName = !startsSentence && /^\p{Lu}[\p{Ll}]*(['’]s)?$/u.test(token);
    if (identifier || properName) {
      const normalized = normalizeSalient(token.replace(/^(\p{Lu}[\p{Lu}\p{N}]+)s$/u, '$1'));
      if (normalized !== '') salient.push(normalized);
    }
  }
  return salient;
}

function features(text: string): TextFeatures {
  // Possessives are dropped so "pino's" is the word "pino"; curly apostrophes are made straight.
  const straight = text.replace(/[’‘]/gu, "'");
  const words = ((straight.replace(/'s\b/gu, '').toLowerCase().match(/[\p{L}\p{N}]+/gu) ?? []) as string[]).map(normalizeWord);
  const contractions = (straight.toLowerCase().match(/[\p{L}\p{N}]+(?:'[\p{L}]+)*/gu) ?? []) as string[];
  const spans = new Set<string>();
  for (let i = 0; i < words.length; i++) {
    for (let n = 1; n <= 4 && i + n <= words.length; n++) spans.add(spanKey(words.slice(i, i + n)));
  }
  let negations = 0;
  contractions.forEach((word, i) => {
    // "…or not?" asks a yes/no question; it negates nothing.
    if (word === 'not' && contractions[i - 1] === 'or') return;
    if (NEGATION_WORDS.has(word) || word.endsWith("n't")) negations += 1;
  });
  return {
    words,
    spans,
    negations,
    numbers: extractNumbers(straight, words),
    salient: extractSalient(straight),
    stems: new Set(words.map(stem)),
  };
}

/** The opposite-word sides each text uses, per group: group name → set of side indexes. */
function oppositeSides(f: TextFeatures): Map<string, Set<number>> {
  const found = new Map<string, Set<number>>();
  const joined = ` ${f.words.join(' ')} `;
  for (const [name, ...sides] of OPPOSITES) {
    sides.forEach((side, index) => {
      if (side.some((entry) => (entry.includes(' ') || entry.includes('-') ? joined.includes(` ${entry.replace('-', ' ')} `) : f.words.includes(entry)))) {
        const set = found.get(name) ?? new Set<number>();
        set.add(index);
        found.set(name, set);
      }
    });
  }
  return found;
}

interface RoleSlot {
  readonly role: string;
  readonly object: string;
  /** Index of the preposition in words. */
  readonly at: number;
}

function roleSlots(words: readonly string[]): RoleSlot[] {
  const slots: RoleSlot[] = [];
  words.forEach((word, at) => {
    const role = ROLE_PREPOSITIONS[word];
    if (role === undefined) return;
    let next = at + 1;
    while (next < words.length && DETERMINERS.has(words[next] as string)) next += 1;
    const object = words[next];
    if (object !== undefined) slots.push({ role, object, at });
  });
  return slots;
}

/** Names the swap when a's object of some role comes before that role in b and vice versa: "JSON to YAML" / "YAML to JSON". */
function swappedRoles(a: TextFeatures, b: TextFeatures): string | undefined {
  const slotsA = roleSlots(a.words);
  const slotsB = roleSlots(b.words);
  for (const sa of slotsA) {
    for (const sb of slotsB) {
      if (sa.role !== sb.role || sa.object === sb.object) continue;
      const aObjectEarlierInB = b.words.slice(0, sb.at).includes(sa.object);
      const bObjectEarlierInA = a.words.slice(0, sa.at).includes(sb.object);
      const alsoObjectInB = slotsB.some((s) => s.role === sa.role && s.object === sa.object);
      if (aObjectEarlierInB && bObjectEarlierInA && !alsoObjectInB) {
        return `"${sa.role} ${sa.object}" vs "${sb.role} ${sb.object}"`;
      }
    }
  }
  return undefined;
}

function missingSalient(from: TextFeatures, other: TextFeatures): string | undefined {
  return from.salient.find((s) => !other.spans.has(s) && !other.spans.has(`${s}s`) && !other.spans.has(s.replace(/s$/u, '')));
}

/**
 * The one content word that differs between two otherwise identical questions, if that is the
 * only difference: "timeout in axios" vs "timeout in got".
 */
function singleSwap(a: TextFeatures, b: TextFeatures): [string, string] | undefined {
  const x = a.words;
  const y = b.words;
  let prefix = 0;
  while (prefix < x.length && prefix < y.length && x[prefix] === y[prefix]) prefix += 1;
  let suffix = 0;
  while (suffix < x.length - prefix && suffix < y.length - prefix && x[x.length - 1 - suffix] === y[y.length - 1 - suffix]) suffix += 1;
  if (x.length - prefix - suffix !== 1 || y.length - prefix - suffix !== 1 || prefix + suffix === 0) return undefined;
  const wa = x[prefix] as string;
  const wb = y[prefix] as string;
  if (FUNCTION_WORDS.has(wa) || FUNCTION_WORDS.has(wb) || stem(wa) === stem(wb)) return undefined;
  // "two" vs "2" is the numbers rule's business, and it found them equal.
  if ((NUMBER_WORDS[wa] ?? wa) === (NUMBER_WORDS[wb] ?? wb)) return undefined;
  // Words the opposites table lists on the same side are synonyms by its own account.
  if (OPPOSITES.some(([, ...sides]) => sides.some((side) => side.includes(wa) && side.includes(wb)))) return undefined;
  return [wa, wb];
}

function reversal(a: TextFeatures, b: TextFeatures): string | undefined {
  for (const longer of a.stems) {
    for (const prefix of REVERSAL_PREFIXES) {
      if (!longer.startsWith(prefix)) continue;
      const base = longer.slice(prefix.length);
      if (base.length < REVERSAL_MIN_BASE) continue;
      // Reversed on one side only: "subscribe" vs "unsubscribe", not "unsubscribe then subscribe again".
      if (b.stems.has(base) && !b.stems.has(longer) && !a.stems.has(base)) return `${base}… vs ${longer}…`;
    }
  }
  return undefined;
}

/**
 * The rule set, in the order reasons are reported. Each rule looks for a difference that
 * embeddings reliably miss and that changes what a correct answer says.
 */
const GUARD_RULES: readonly GuardRule[] = [
  {
    // "with/without", "does/doesn't": the answer flips while the cosine barely moves.
    name: 'negation',
    check: (a, b) => (a.negations !== b.negations ? `negation differs (${a.negations} vs ${b.negations} cues)` : undefined),
  },
  {
    // Versions, sizes, durations, limits: an answer about v10 or 30 s is wrong for v11 or 60 s,
    // and static embeddings hold almost no numeric information.
    name: 'numbers',
    check: (a, b) =>
      a.numbers.join(' ') !== b.numbers.join(' ')
        ? `numbers differ ([${a.numbers.join(', ')}] vs [${b.numbers.join(', ')}])`
        : undefined,
  },
  {
    // Package names, APIs, options and quoted strings decide which docs answer the question;
    // unknown names are often out of the model's vocabulary and so invisible to it. Each side's
    // names must appear in the other (in any case or spacing: "built-in" matches "built in").
    name: 'names',
    check: (a, b) => {
      const missing = missingSalient(a, b) ?? missingSalient(b, a);
      return missing !== undefined ? `name or identifier "${missing}" appears on one side only` : undefined;
    },
  },
  {
    // Opposites share contexts, so their word vectors are close; one side using a word and the
    // other its opposite (and not the word itself) is a different question.
    name: 'opposites',
    check: (a, b) => {
      const sidesA = oppositeSides(a);
      const sidesB = oppositeSides(b);
      for (const [name] of OPPOSITES) {
        const x = sidesA.get(name) ?? new Set<number>();
        const y = sidesB.get(name) ?? new Set<number>();
        const union = new Set([...x, ...y]);
        const same = x.size === y.size && [...x].every((side) => y.has(side));
        if (union.size === 2 && !same) return `opposite words (${name})`;
      }
      return undefined;
    },
  },
  {
    // un-/de-/dis-/non-/in- reverse a word the opposites table cannot list exhaustively.
    name: 'reversal',
    check: (a, b) => {
      const found = reversal(a, b) ?? reversal(b, a);
      return found !== undefined ? `reversed word (${found})` : undefined;
    },
  },
  {
    // Word order is invisible to a bag-of-words model; a swapped source and target is not.
    name: 'swapped roles',
    check: (a, b) => {
      const found = swappedRoles(a, b);
      return found !== undefined ? `swapped roles (${found})` : undefined;
    },
  },
  {
    // "how" vs "why" vs "when": different answers, near-zero SIF weight (see INTENT_WORDS).
    name: 'question intent',
    check: (a, b) => {
      const x = a.words.filter((w) => INTENT_WORDS.has(w));
      const y = new Set(b.words.filter((w) => INTENT_WORDS.has(w)));
      if (x.length === 0 || y.size === 0 || x.some((w) => y.has(w))) return undefined;
      return `question intent differs (${x[0] ?? ''} vs ${[...y][0] ?? ''})`;
    },
  },
  {
    // Two questions identical but for one content word are about different things far more
    // often than they are synonym rewordings: distributional embeddings put co-hyponyms
    // (jest/vitest, json/yaml, request/response) close together because they share contexts,
    // and a word missing from the vocabulary (ajv, zod) contributes nothing, so "validate
    // JSON with ajv" and "… with zod" embed identically. The cost: a one-word synonym
    // rewording ("big file" / "large file") is a miss.
    name: 'single-word swap',
    check: (a, b) => {
      const swap = singleSwap(a, b);
      return swap !== undefined ? `only "${swap[0]}" vs "${swap[1]}" differs` : undefined;
    },
  },
];

/**
 * Why two near-identical questions likely mean different things, or undefined when none of the
 * rules sees a difference. Pure; conservative on purpose — a false "different" costs one
 * ordinary pipeline run, a false "same" serves someone the answer to another question.
 */
export function guardDifference(a: string, b: string): string | undefined {
  if (a === b) return undefined;
  const fa = features(a);
  const fb = features(b);
  for (const rule of GUARD_RULES) {
    const reason = rule.check(fa, fb);
    if (reason !== undefined) return `${rule.name}: ${reason}`;
  }
  return undefined;
}

/** The guard's rule names, in order (for docs and tests). */
export const GUARD_RULE_NAMES: readonly string[] = GUARD_RULES.map((rule) => rule.name);
