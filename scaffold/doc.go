// Package scaffold writes a new runbook's first files, as `starbook new`
// does: NAME.star (an opening comment, its trigger declarations, one step
// run with call(), an approval where a person is there to give it),
// NAME_test.star (tests that pass offline with mocks) and NAME.schema.json
// (its input).
//
// Invariants: Generate refuses what apply would refuse (an invalid runbook
// name, a label, cron spec or webhook name the triggers package refuses)
// before anything is written; its files pass `starbook check`, `starbook
// test` and `starbook fmt --check` as generated (tested for every
// combination of triggers); Write never overwrites a file unless told to.
package scaffold
