#!/usr/bin/env node
// Offline syntax check for Bicep files.
//
// Usage: node infra/check/syntax.mjs [path ...]
//
// Each path is a .bicep / .bicepparam file or a directory searched recursively for them (node_modules and
// dot-directories are skipped). With no path, the infra/ directory next to this script is checked.
//
// The check parses every file with the tree-sitter Bicep grammar (npm tree-sitter-bicep + web-tree-sitter) and
// reports each ERROR node and each MISSING node as "file:line:column: message". It is a syntax check only: it
// does not resolve resource types, API versions, property names or symbols; `bicep build` / `bicep lint` do that
// where the Bicep CLI is installed (scripts/infra-check.sh).
//
// Exit status: 0 when every file parses cleanly, 1 when at least one syntax error was found, 2 when the
// arguments are wrong (a path does not exist, or no Bicep file was found) or the parser cannot be loaded.

import { readFile, readdir, stat } from 'node:fs/promises';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const require = createRequire(import.meta.url);
const BICEP_EXTENSIONS = ['.bicep', '.bicepparam'];

/** Loads the Bicep grammar once and returns a parser for it. */
export async function loadParser() {
  const Parser = require('web-tree-sitter');
  await Parser.init();
  const wasm = require.resolve('tree-sitter-bicep/tree-sitter-bicep.wasm');
  const language = await Parser.Language.load(wasm);
  const parser = new Parser();
  parser.setLanguage(language);
  return parser;
}

/**
 * Returns the syntax problems in one Bicep source text, in source order. Each problem is
 * {line, column, message} with 1-based line and column. kind is 'bicep' (default) or 'bicepparam'.
 */
export function findSyntaxErrors(parser, text, kind = 'bicep') {
  const tree = parser.parse(kind === 'bicepparam' ? paramsAsVariables(text) : text);
  try {
    const problems = [];
    if (tree.rootNode.hasError) {
      collect(tree.rootNode, text, problems);
    }
    return problems;
  } finally {
    tree.delete();
  }
}

// collect walks the subtree under node and appends one problem per ERROR or MISSING node. The children of an
// ERROR node are not reported again: the ERROR already covers them.
function collect(node, text, problems) {
  if (node.isMissing) {
    problems.push(at(node, `missing ${node.type}`));
    return;
  }
  if (node.type === 'ERROR') {
    problems.push(at(node, `unexpected ${describe(text, node)}`));
    return;
  }
  if (!node.hasError) {
    return;
  }
  for (let i = 0; i < node.childCount; i++) {
    collect(node.child(i), text, problems);
  }
}

// paramsAsVariables adapts a .bicepparam file to the grammar, which only knows typed `param name type = value`
// declarations. A parameters file assigns `param name = value`; rewriting the keyword to `var  ` (same length)
// turns each assignment into a variable declaration with identical line and column numbers.
export function paramsAsVariables(text) {
  return text.replace(/^([ \t]*)param(?=[ \t]+[A-Za-z_][A-Za-z0-9_]*[ \t]*=)/gm, '$1var  ');
}

function at(node, message) {
  return { line: node.startPosition.row + 1, column: node.startPosition.column + 1, message };
}

// describe quotes the start of the offending text (first line, at most 40 characters).
function describe(text, node) {
  let snippet = text.slice(node.startIndex, node.endIndex).split('\n')[0].trim();
  if (snippet.length > 40) {
    snippet = `${snippet.slice(0, 40)}…`;
  }
  return snippet === '' ? 'end of input' : JSON.stringify(snippet);
}

/**
 * Expands files and directories into a sorted list of Bicep files. Throws when a path does not exist or names a
 * file that is not .bicep / .bicepparam.
 */
export async function listBicepFiles(paths) {
  const out = [];
  for (const p of paths) {
    let info;
    try {
      info = await stat(p);
    } catch (err) {
      throw new Error(`${p}: no such file or directory`, { cause: err });
    }
    if (info.isDirectory()) {
      await walk(p, out);
    } else if (BICEP_EXTENSIONS.includes(path.extname(p))) {
      out.push(p);
    } else {
      throw new Error(`${p}: not a .bicep or .bicepparam file`);
    }
  }
  return [...new Set(out)].sort();
}

async function walk(dir, out) {
  const entries = await readdir(dir, { withFileTypes: true });
  for (const e of entries) {
    if (e.name === 'node_modules' || e.name.startsWith('.')) {
      continue;
    }
    const full = path.join(dir, e.name);
    if (e.isDirectory()) {
      await walk(full, out);
    } else if (BICEP_EXTENSIONS.includes(path.extname(e.name))) {
      out.push(full);
    }
  }
}

async function main(argv) {
  const here = path.dirname(fileURLToPath(import.meta.url));
  const paths = argv.length > 0 ? argv : [path.resolve(here, '..')];
  let files;
  try {
    files = await listBicepFiles(paths);
  } catch (err) {
    console.error(`bicep syntax: ${err.message}`);
    return 2;
  }
  if (files.length === 0) {
    console.error(`bicep syntax: no .bicep or .bicepparam file under ${paths.join(', ')}`);
    return 2;
  }
  let parser;
  try {
    parser = await loadParser();
  } catch (err) {
    console.error(`bicep syntax: cannot load the tree-sitter Bicep grammar (run npm ci): ${err.message}`);
    return 2;
  }
  let total = 0;
  for (const file of files) {
    const text = await readFile(file, 'utf8');
    const kind = path.extname(file) === '.bicepparam' ? 'bicepparam' : 'bicep';
    for (const p of findSyntaxErrors(parser, text, kind)) {
      console.error(`${file}:${p.line}:${p.column}: ${p.message}`);
      total++;
    }
  }
  parser.delete();
  if (total > 0) {
    console.error(`bicep syntax: ${total} error(s) in ${files.length} file(s)`);
    return 1;
  }
  console.log(`bicep syntax: ${files.length} file(s) OK`);
  return 0;
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  process.exitCode = await main(process.argv.slice(2));
}
