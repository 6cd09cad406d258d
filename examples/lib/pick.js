// Imported by journey.js: modules import each other by relative path.
export const pick = (list) => list[Math.floor(Math.random() * list.length)];
