#!/usr/bin/env node
// Installs what the examples and tests need beyond npm packages. Idempotent.
console.log('setup: nothing beyond npm packages yet');
