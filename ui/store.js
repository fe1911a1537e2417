// The decisions the page has seen, fed by one stream for the whole session (so switching pages
// neither drops the stream nor loses what arrived), newest last, bounded.

const MAX_RECORDS = 2000;

export const decisions = {
  records: [],
  listeners: new Set(),
  state: 'connecting',
  stateListeners: new Set(),

  add(record) {
    const last = this.records.at(-1);
    if (last && record.seq <= last.seq) return; // a replay after a reconnect
    this.records.push(record);
    if (this.records.length > MAX_RECORDS) this.records.splice(0, this.records.length - MAX_RECORDS);
    for (const fn of this.listeners) fn(record);
  },

  subscribe(fn) {
    this.listeners.add(fn);
    return () => this.listeners.delete(fn);
  },

  setState(state) {
    this.state = state;
    for (const fn of this.stateListeners) fn(state);
  },

  onState(fn) {
    this.stateListeners.add(fn);
    return () => this.stateListeners.delete(fn);
  },
};
