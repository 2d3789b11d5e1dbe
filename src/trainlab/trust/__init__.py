"""The three guarantees trainlab gives about files, each decided here and nowhere else.

- Nothing lost (:mod:`trainlab.trust.files`): trainlab removes only what the same process
  created, writes over no result unless told to (``overwrite=true``, or ``resume=auto``, which
  continues), and writes every file a resume depends on so that a kill at any instant leaves
  either the old or the new file whole.
- Nothing leaked (:mod:`trainlab.trust.secrets`): a credential given on the command line, in
  the environment or in a config value appears in no file and on no console line.
- Nothing run from a file (:mod:`trainlab.trust.loading`): a checkpoint is read with
  ``weights_only`` whatever the environment says, and a run directory's config builds only the
  classes this project's own configs name (or those the user trusts by name).

Imported when Hydra starts (its callbacks are built before the job runs): nothing heavy here.
"""
