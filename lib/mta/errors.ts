// The outbound side's typed errors live in lib/errors.ts (one errors module for the package).
export { BindingError, UnknownBindingError, BindingBrokenError, BindingNotLocalError, BindingUnownedError, BindingMovedError, NoLocalBindingError, RelayError } from '../errors';
