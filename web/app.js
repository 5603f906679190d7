/*
 * app.js — the classifyd page: pick, drop or paste a photo, POST it to
 * /classify?model=NAME and draw the top-5 as bars. Plain DOM, no framework,
 * no inline code (the page is served under a strict Content-Security-Policy).
 *
 * One request at a time: a new photo or another model aborts the request in
 * flight, and an answer that is no longer the latest one is dropped (seq).
 * Every failure ends in a message: the API's JSON error when there is one,
 * else the HTTP status, a timeout or a network failure.
 */
'use strict';

(function () {
  const REQUEST_TIMEOUT_MS = 120000;
  const MODELS_RETRY_MS = 2000;

  const $ = (id) => document.getElementById(id);
  const ui = {
    model: $('model'), modelInfo: $('model-info'), untrained: $('untrained'),
    untrainedText: $('untrained-text'), drop: $('drop'), file: $('file'),
    preview: $('preview'), dropText: $('drop-text'), fileName: $('file-name'),
    results: $('results'), badge: $('result-badge'), status: $('status'),
    error: $('error'), errorTitle: $('error-title'), errorMessage: $('error-message'),
    errorHint: $('error-hint'), bars: $('bars'), timing: $('timing'),
  };
  const state = { models: [], file: null, previewUrl: null, ctrl: null, seq: 0 };

  /* Titles by API error code, then by HTTP status. */
  const CODE_TITLES = {
    payload_too_large: 'File too large', image_too_large: 'Image too large',
    unsupported_media_type: 'Unsupported format', invalid_image: 'The image could not be read',
    queue_full: 'Server busy', not_ready: 'Not ready yet', deadline_exceeded: 'Timed out',
    model_not_found: 'Unknown model', invalid_parameter: 'Invalid request',
    internal_error: 'Server error',
  };
  const STATUS_TITLES = {
    400: 'Bad request', 404: 'Not found', 413: 'Too large', 415: 'Unsupported format',
    500: 'Server error', 503: 'Server busy or not ready', 504: 'Timed out',
  };
  const HINTS = {
    payload_too_large: 'Try a smaller file.',
    image_too_large: 'Try an image with fewer pixels.',
    unsupported_media_type: 'Use a JPEG, PNG or WebP file.',
    invalid_image: 'The file may be damaged or not an image.',
    queue_full: 'Too many requests are waiting; try again in a moment.',
    not_ready: 'The model is still loading; try again in a moment.',
    deadline_exceeded: 'The server was too busy to start in time; try again.',
  };

  /* tests/browser/test_page.js applies the same rule to the API's numbers. */
  function formatPercent(p) {
    const v = p * 100;
    if (v > 0 && v < 0.05) return '<0.1%';
    return v.toFixed(1) + '%';
  }

  /* 11684712 -> "11.7M"; 1814073344 -> "1.81G". */
  function formatCount(n) {
    if (n >= 1e9) return (n / 1e9).toFixed(2) + 'G';
    if (n >= 1e6) return (n / 1e6).toFixed(1) + 'M';
    if (n >= 1e3) return (n / 1e3).toFixed(1) + 'k';
    return String(n);
  }

  /* A no-break space keeps a number and its unit on one line. */
  function formatMs(ms) {
    return (ms >= 100 ? ms.toFixed(0) : ms.toFixed(1)) + '\u00a0ms';
  }

  /* ---- models ------------------------------------------------------------ */

  function modelByName(name) {
    return state.models.find((m) => m.name === name) || null;
  }

  function modelOption(m) {
    const o = document.createElement('option');
    o.value = m.name;
    if (!m.ready) {
      o.textContent = m.name + ' (loading…)';
      o.disabled = true;
      return o;
    }
    o.textContent = m.name + ' — ' + formatCount(m.parameters) + ' params, ' +
      formatCount(m.macs) + ' MACs/image' + (m.untrained ? ' — untrained' : '');
    return o;
  }

  function fillModels(list) {
    const keep = ui.model.value;
    state.models = list.models;
    ui.model.replaceChildren(...list.models.map(modelOption));
    const ready = list.models.filter((m) => m.ready);
    const want = modelByName(keep) && modelByName(keep).ready ? keep
      : (modelByName(list.default) && modelByName(list.default).ready ? list.default
        : (ready[0] ? ready[0].name : ''));
    ui.model.value = want;
    ui.model.disabled = ready.length === 0;
    showModelInfo();
    return ready.length === list.models.length;
  }

  function showModelInfo() {
    const m = modelByName(ui.model.value);
    if (!m) {
      ui.modelInfo.textContent = state.models.length ? 'Models are loading…' : '';
      ui.untrained.hidden = true;
      return;
    }
    const shape = m.input_shape ? m.input_shape.join('×') : '?';
    ui.modelInfo.textContent = m.arch + ': ' + m.parameters.toLocaleString('en-US') +
      ' parameters, ' + m.macs.toLocaleString('en-US') + ' multiply-accumulates per image, input ' +
      shape + ', ' + m.num_classes + ' classes.';
    ui.untrained.hidden = !m.untrained;
    ui.untrainedText.textContent = m.untrained
      ? m.name + ' has random weights: its guesses mean nothing. It shows that the server works.'
      : '';
  }

  async function loadModels() {
    let allReady = false;
    try {
      const res = await fetch('/models', { cache: 'no-store' });
      const body = await readJson(res);
      if (!res.ok || !body || !Array.isArray(body.models)) throw new Error('HTTP ' + res.status);
      allReady = fillModels(body);
    } catch (e) {
      ui.modelInfo.textContent = 'Cannot list the models (' + e.message + '); retrying…';
    }
    if (!allReady) setTimeout(loadModels, MODELS_RETRY_MS);
  }

  /* ---- input: picker, drag and drop, paste --------------------------------- */

  function takeFile(f) {
    if (!f) return;
    state.file = f;
    if (state.previewUrl) URL.revokeObjectURL(state.previewUrl);
    state.previewUrl = URL.createObjectURL(f);
    ui.preview.src = state.previewUrl;
    ui.preview.alt = 'Preview of ' + (f.name || 'the pasted image');
    ui.preview.hidden = false;
    ui.dropText.hidden = true;
    ui.drop.classList.add('has-image');
    ui.fileName.textContent = (f.name || 'pasted image') + ' · ' + formatCount(f.size) + 'B';
    classify();
  }

  function firstImageFile(dt) {
    if (!dt) return null;
    if (dt.files && dt.files.length) return dt.files[0];
    for (const item of dt.items || []) {
      if (item.kind === 'file') return item.getAsFile();
    }
    return null;
  }

  function bindInput() {
    ui.drop.addEventListener('click', () => ui.file.click());
    ui.drop.addEventListener('keydown', (e) => {
      if (e.key === 'Enter' || e.key === ' ') {
        e.preventDefault();
        ui.file.click();
      }
    });
    ui.file.addEventListener('change', () => {
      takeFile(ui.file.files[0]);
      ui.file.value = '';
    });
    ui.preview.addEventListener('error', () => {
      ui.preview.hidden = true;
      ui.dropText.hidden = false;
      ui.drop.classList.remove('has-image');
    });
    /* Drops anywhere on the page count; the browser must never navigate to the file. */
    document.addEventListener('dragover', (e) => {
      e.preventDefault();
      ui.drop.classList.add('over');
    });
    document.addEventListener('dragleave', (e) => {
      if (!e.relatedTarget) ui.drop.classList.remove('over');
    });
    document.addEventListener('drop', (e) => {
      e.preventDefault();
      ui.drop.classList.remove('over');
      takeFile(firstImageFile(e.dataTransfer));
    });
    document.addEventListener('paste', (e) => {
      const f = firstImageFile(e.clipboardData);
      if (f) {
        e.preventDefault();
        takeFile(f);
      } else {
        setStatus('The clipboard holds no image.');
      }
    });
    ui.model.addEventListener('change', () => {
      showModelInfo();
      if (state.file) classify();
    });
  }

  /* ---- classify -------------------------------------------------------------- */

  async function readJson(res) {
    const text = await res.text();
    try {
      return JSON.parse(text);
    } catch (e) {
      return null;
    }
  }

  function setStatus(text) {
    ui.status.textContent = text;
  }

  function setBusy(on) {
    ui.results.setAttribute('aria-busy', on ? 'true' : 'false');
    document.body.classList.toggle('busy', on);
  }

  function clearOutput() {
    ui.error.hidden = true;
    ui.bars.replaceChildren();
    ui.timing.textContent = '';
    ui.badge.hidden = true;
  }

  function showError(title, message, hint) {
    ui.bars.replaceChildren();
    ui.timing.textContent = '';
    ui.errorTitle.textContent = title;
    ui.errorMessage.textContent = message;
    ui.errorHint.textContent = hint || '';
    ui.error.hidden = false;
    setStatus('Failed: ' + title + '.');
  }

  function showApiError(res, body) {
    const err = body && body.error && typeof body.error === 'object' ? body.error : null;
    const code = err && typeof err.code === 'string' ? err.code : '';
    const title = CODE_TITLES[code] || STATUS_TITLES[res.status] || 'HTTP ' + res.status;
    const message = err && typeof err.message === 'string' ? err.message
      : 'The server answered HTTP ' + res.status + ' ' + res.statusText + '.';
    let hint = HINTS[code] || '';
    const retry = res.headers.get('Retry-After');
    if (retry && res.status === 503) hint += ' (Retry-After: ' + retry + ' s)';
    showError(title, message, hint.trim());
  }

  function barItem(p) {
    const li = document.createElement('li');
    li.className = 'bar';
    li.dataset.index = String(p.index);
    li.dataset.probability = String(p.probability);
    const label = document.createElement('span');
    label.className = 'bar-label';
    label.textContent = p.label;
    const pct = document.createElement('span');
    pct.className = 'bar-pct';
    pct.textContent = formatPercent(p.probability);
    const track = document.createElement('span');
    track.className = 'bar-track';
    track.setAttribute('aria-hidden', 'true');
    const fill = document.createElement('span');
    fill.className = 'bar-fill';
    fill.style.width = Math.min(100, Math.max(0, p.probability * 100)).toFixed(2) + '%';
    track.append(fill);
    li.append(label, pct, track);
    return li;
  }

  function showResult(body, roundTripMs) {
    const preds = Array.isArray(body.predictions) ? body.predictions : [];
    ui.bars.replaceChildren(...preds.map(barItem));
    ui.badge.hidden = !body.untrained;
    const t = body.timing_ms || {};
    const parts = [];
    if (typeof t.total === 'number') {
      parts.push('Server ' + formatMs(t.total) + ' (queue ' + formatMs(t.queue) + ', decode ' +
        formatMs(t.preprocess) + ', inference ' + formatMs(t.inference) + ', batch of ' +
        body.batch_size + ')');
    }
    parts.push('round trip ' + formatMs(roundTripMs));
    ui.timing.textContent = parts.join(' · ') + '.';
    const top = preds[0];
    setStatus(top ? body.model + ': ' + top.label + ', ' + formatPercent(top.probability) +
      (body.untrained ? ' (untrained model)' : '') + '.' : body.model + ': no predictions.');
  }

  async function classify() {
    const name = ui.model.value;
    if (!state.file) return;
    if (!name) {
      showError('Not ready yet', 'No model is loaded yet.', 'Try again in a moment.');
      return;
    }
    if (state.ctrl) state.ctrl.abort();
    const ctrl = new AbortController();
    const seq = ++state.seq;
    state.ctrl = ctrl;
    clearOutput();
    setBusy(true);
    setStatus('Classifying with ' + name + '…');
    const timer = setTimeout(() => ctrl.abort(), REQUEST_TIMEOUT_MS);
    const t0 = performance.now();
    try {
      const res = await fetch('/classify?model=' + encodeURIComponent(name), {
        method: 'POST', body: state.file, signal: ctrl.signal, cache: 'no-store',
        headers: { 'Content-Type': 'application/octet-stream' },
      });
      const body = await readJson(res);
      if (seq !== state.seq) return;
      if (res.ok && body && Array.isArray(body.predictions)) showResult(body, performance.now() - t0);
      else showApiError(res, body);
    } catch (e) {
      if (seq !== state.seq) return;
      if (ctrl.signal.aborted) {
        showError('Timed out', 'No answer within ' + REQUEST_TIMEOUT_MS / 1000 + ' seconds.',
          'Try again.');
      } else {
        showError('Network error', 'Could not reach the server (' + e.message + ').',
          'Check that classifyd is running, then try again.');
      }
    } finally {
      clearTimeout(timer);
      if (seq === state.seq) {
        setBusy(false);
        state.ctrl = null;
      }
    }
  }

  bindInput();
  loadModels();
})();
